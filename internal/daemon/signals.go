package daemon

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"os/signal"
	"sync"
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

// Service is the plumbing around a daemon's main loop, wired the same
// way in every ringfront daemon: the admin listener, reloads on SIGHUP
// and on POST /v1/reload (both through RunReload), the systemd
// watchdog, and STOPPING=1 at the end. The daemon says READY=1 itself,
// when it is ready.
type Service struct {
	Log      *slog.Logger
	Admin    *Admin // after Listen
	Notifier *Notifier
	// Reload re-reads the config; nil means the daemon has no reload.
	Reload Reloader
	// Alive is the watchdog's test; nil means always alive.
	Alive func() bool
}

// Run runs main with the service's plumbing until ctx is done or main
// returns; a main that returns nil or ctx's error is a clean stop. The
// admin listener serves until main has returned, so /readyz and
// /metrics answer through a graceful stop.
func (s Service) Run(ctx context.Context, main func(ctx context.Context) error) error {
	if s.Reload != nil {
		s.Admin.HandleReload(s.Log, s.Notifier, s.Reload)
	}
	aux, stopAux := context.WithCancel(context.WithoutCancel(ctx))
	defer stopAux()
	var g sync.WaitGroup
	adminErr := make(chan error, 1)
	g.Go(func() { adminErr <- s.Admin.Serve(aux) })
	if s.Reload != nil {
		g.Go(func() { HandleReloads(aux, s.Log, s.Notifier, s.Reload) })
	}
	g.Go(func() { s.Notifier.Watchdog(aux, s.Alive) })

	mainCtx, stopMain := context.WithCancelCause(ctx)
	defer stopMain(nil)
	mainErr := make(chan error, 1)
	go func() { mainErr <- main(mainCtx) }()
	var err error
	select {
	case err = <-mainErr:
	case err = <-adminErr:
		// The admin listener failed: stop the daemon with its error.
		stopMain(err)
		<-mainErr
	}
	s.Notifier.Stopping()
	stopAux()
	g.Wait()
	if err == nil || errors.Is(err, context.Canceled) && ctx.Err() != nil {
		s.Log.Info("stopped", "op", "stop")
		return nil
	}
	return err
}
