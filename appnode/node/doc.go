// Package node wires one appnode daemon together: its configuration
// (Config, the one Tuning applied at start and on every reload), the
// store, the API server and its subsystems, the failure detector and
// the admin listener (status, reload, /readyz, /metrics). The daemon's
// shape is every ringfront daemon's: Open (the store opened and the
// listeners bound, so a bad address or a locked database fails before
// anything is announced), then Run(ctx) under daemon.Service (reloads
// on SIGHUP and POST /v1/reload, the systemd watchdog and
// notifications). package main only parses the command line, calls
// Open and Run.
package node
