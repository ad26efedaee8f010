// Package daemon is the plumbing every ringfront daemon shares: slog
// setup, systemd notifications (READY, RELOADING, STOPPING, WATCHDOG),
// the signal loop (SIGTERM/SIGINT stop, SIGHUP reload), the admin HTTP
// listener with /healthz, /readyz, /metrics and POST /v1/reload,
// Service (the admin listener, reloads and the watchdog around a
// daemon's main loop), and the CLI's admin side: AdminClient (the
// --admin and --token-file flags, else the config's admin section) and
// the status and reload commands, the same in every daemon.
package daemon
