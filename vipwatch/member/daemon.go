package member

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"time"

	"github.com/ringfront/ringfront/internal/daemon"
	"github.com/ringfront/ringfront/vipwatch/iface"
)

// Daemon is vipwatch as systemd runs it: the member, its admin API,
// reloads (SIGHUP and POST /v1/reload) and systemd notifications.
// OpenDaemon it, then Run it.
type Daemon struct {
	m   *Member
	svc daemon.Service
}

// OpenDaemon checks privileges, opens the interface, and binds the
// heartbeat socket and the admin listener. load re-reads the config for
// a reload; nil means no reloads.
func OpenDaemon(cfg Config, load func() (Config, error), log *slog.Logger) (*Daemon, error) {
	if err := CheckPrivileges(); err != nil {
		return nil, err
	}
	m, err := Open(cfg, cfg.Secret, log)
	if err != nil {
		return nil, err
	}
	if err := m.Listen(); err != nil {
		return nil, err
	}
	admin := daemon.NewAdmin(cfg.Admin.Token)
	admin.Registry().MustRegister(daemon.BuildInfo("vipwatch"))
	if err := m.Register(admin.Registry()); err != nil {
		return nil, err
	}
	admin.Handle("GET /v1/status", m.ServeStatus)
	admin.Handle("POST /v1/handover", m.ServeHandover)
	admin.Handle("POST /v1/takeback", m.ServeTakeback)
	if err := admin.Listen(cfg.Admin.Listen); err != nil {
		return nil, err
	}
	d := &Daemon{m: m, svc: daemon.Service{Log: log, Admin: admin, Notifier: daemon.NewNotifier(log), Alive: m.Alive}}
	if load != nil {
		d.svc.Reload = func(context.Context) error {
			next, err := load()
			if err != nil {
				return err
			}
			return m.Reload(next, next.Secret)
		}
	}
	m.OnReady = func(ready bool) {
		admin.SetReady(ready)
		if ready {
			d.svc.Notifier.Status("serving")
		}
	}
	return d, nil
}

// AdminAddr is the admin listener's bound address.
func (d *Daemon) AdminAddr() string { return d.svc.Admin.Addr().String() }

// Run runs the daemon until ctx is done. READY=1 goes out once the
// heartbeat socket is bound and the loop is about to start; the loop
// then cleans up before it does anything else.
func (d *Daemon) Run(ctx context.Context) error {
	return d.svc.Run(ctx, func(ctx context.Context) error {
		d.svc.Notifier.Ready("starting")
		return d.m.Run(ctx)
	})
}

// ReleaseAll removes every address vipwatch put on an interface (see
// Cleanup), saying what it removed on w (and a config it could not
// read on errw): on ifname, or when that is
// empty on the config's interface (its runtime_dir too, unless
// runtimeDir is set), or on every interface when load cannot read the
// config (systemd runs this after the daemon died, maybe of a broken
// edit). Every interface vipwatch cannot open is skipped then.
func ReleaseAll(w, errw io.Writer, ifname, runtimeDir string, load func() (Config, error)) error {
	names := []string{ifname}
	if ifname == "" {
		cfg, err := load()
		if err != nil {
			fmt.Fprintf(errw, "vipwatch: %v; cleaning every interface\n", err)
			if names, err = iface.Names(); err != nil {
				return err
			}
		} else {
			names = []string{cfg.Interface}
			if runtimeDir == "" {
				runtimeDir = cfg.RuntimeDir
			}
		}
	}
	if runtimeDir == "" {
		runtimeDir = DefaultRuntimeDir
	}
	if err := CheckPrivileges(); err != nil {
		return err
	}
	var errs []error
	for _, name := range names {
		ifc, err := iface.Open(name, runtimeDir)
		if err != nil {
			if len(names) > 1 {
				continue
			}
			return err
		}
		removed, err := Cleanup(ifc)
		for _, p := range removed {
			fmt.Fprintf(w, "removed %v from %s\n", p, name)
		}
		errs = append(errs, err)
		if len(removed) == 0 && len(names) == 1 {
			fmt.Fprintf(w, "no vipwatch addresses on %s\n", name)
		}
	}
	return errors.Join(errs...)
}

// Move asks the running daemon for a handover or takeback (POST path)
// through call, then polls its status until done says the move is
// complete, or fails after wait. It returns the latest status.
func Move(ctx context.Context, call func(ctx context.Context, method, path string, out any) error, path string, done func(Status) bool, wait time.Duration) (Status, error) {
	var st Status
	if err := call(ctx, "POST", path, &st); err != nil {
		return st, err
	}
	// The move completes in a heartbeat or two.
	deadline := time.Now().Add(wait)
	for !done(st) {
		if time.Now().After(deadline) {
			return st, fmt.Errorf("not complete after %v (see the status above)", wait)
		}
		time.Sleep(50 * time.Millisecond)
		if err := call(ctx, "GET", "/v1/status", &st); err != nil {
			return st, err
		}
	}
	return st, nil
}

// HandedOver reports whether a handover is complete: this node gives
// VIPs, and the partner alone holds every one of them.
func HandedOver(st Status) bool {
	if len(st.Gives) == 0 {
		return false
	}
	for _, v := range st.VIPs {
		if slices.Contains(st.Gives, v.VIP) && (v.Holder == st.Node || v.Holder == "both" || v.Holder == "") {
			return false
		}
	}
	return true
}

// TakenBack reports whether a takeback is complete: this node holds
// its home VIPs again, or still gives them because its tracked service
// fails.
func TakenBack(st Status) bool {
	if len(st.Gives) > 0 {
		return true
	}
	for _, v := range st.VIPs {
		if v.Home == st.Node && v.Holder != st.Node {
			return false
		}
	}
	return true
}
