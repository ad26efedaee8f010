// Package daemon is the plumbing every ringfront daemon shares: slog
// setup, systemd notifications (READY, RELOADING, STOPPING, WATCHDOG),
// the signal loop (SIGTERM/SIGINT stop, SIGHUP reload), and the admin
// HTTP listener with /healthz, /readyz and /metrics.
package daemon
