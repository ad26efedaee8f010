package daemon

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
)

// Reloader re-reads configuration; a failed reload must leave the old
// configuration in force.
type Reloader func(ctx context.Context) error

// HandleReloads calls reload on every SIGHUP until ctx is done, telling
// systemd about each reload and logging its outcome. Run it in its own
// goroutine; it returns when ctx is done.
func HandleReloads(ctx context.Context, log *slog.Logger, n *Notifier, reload Reloader) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			RunReload(ctx, log, n, reload, "SIGHUP")
		}
	}
}

// RunReload runs one reload with systemd notifications around it. It is
// used for SIGHUP and for the admin API's reload endpoint.
func RunReload(ctx context.Context, log *slog.Logger, n *Notifier, reload Reloader, cause string) error {
	n.Reloading()
	err := reload(ctx)
	if err != nil {
		log.Error("reload rejected, old config still in force", "op", "reload", "cause", cause, "err", err)
		n.Ready("reload failed: " + err.Error())
		return err
	}
	log.Info("config reloaded", "op", "reload", "cause", cause)
	n.Ready("serving")
	return nil
}

// SignalContext returns a context cancelled on SIGINT or SIGTERM.
func SignalContext(parent context.Context) (context.Context, context.CancelFunc) {
	return signal.NotifyContext(parent, os.Interrupt, syscall.SIGTERM)
}
