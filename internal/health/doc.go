// Package health runs health checks against targets and tracks their
// state with rise/fall hysteresis.
//
// A [Check] says how to probe (tcp connect, http or https status and an
// optional body substring) and how often. A [Monitor] probes every target
// on its own schedule with bounded concurrency. A target's first result
// sets its state directly; after that it changes state only after Rise
// consecutive successes or Fall consecutive failures. Every change is an
// [Event] delivered to each [Subscription], none dropped.
package health
