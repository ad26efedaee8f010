package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	sd "github.com/coreos/go-systemd/v22/daemon"
	"golang.org/x/sys/unix"
)

// Notifier sends systemd service notifications. Outside systemd (no
// NOTIFY_SOCKET) every call is a no-op. It is safe for concurrent use.
type Notifier struct {
	log *slog.Logger
}

// NewNotifier returns a Notifier that logs failed notifications to log.
func NewNotifier(log *slog.Logger) *Notifier { return &Notifier{log: log} }

// UnderSystemd reports whether the process was started by systemd with a
// notification socket.
func UnderSystemd() bool { return os.Getenv("NOTIFY_SOCKET") != "" }

// UnderJournald reports whether stderr goes to the journal.
func UnderJournald() bool { return os.Getenv("JOURNAL_STREAM") != "" }

func (n *Notifier) send(state string) {
	if _, err := sd.SdNotify(false, state); err != nil {
		n.log.Warn("systemd notification failed", "op", "sd_notify", "state", state, "err", err)
	}
}

// Ready says the service is up and serving (READY=1).
func (n *Notifier) Ready(status string) {
	n.send(sd.SdNotifyReady + "\nSTATUS=" + status)
}

// Reloading says a reload has begun. systemd's Type=notify-reload needs
// the monotonic time with it.
func (n *Notifier) Reloading() {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	usec := ts.Sec*1_000_000 + ts.Nsec/1000
	n.send(fmt.Sprintf("%s\nMONOTONIC_USEC=%d", sd.SdNotifyReloading, usec))
}

// Stopping says a graceful stop has begun.
func (n *Notifier) Stopping() { n.send(sd.SdNotifyStopping) }

// Status sets the free-form status line shown by systemctl status.
func (n *Notifier) Status(s string) { n.send("STATUS=" + s) }

// Watchdog sends WATCHDOG=1 at half the unit's WatchdogSec until ctx is
// done, as long as alive reports true. It returns at once when the
// watchdog is not enabled. A daemon whose main loop is wedged stops
// answering alive, and systemd restarts it.
func (n *Notifier) Watchdog(ctx context.Context, alive func() bool) {
	interval, err := sd.SdWatchdogEnabled(false)
	if err != nil || interval == 0 {
		return
	}
	t := time.NewTicker(interval / 2)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if alive == nil || alive() {
				n.send(sd.SdNotifyWatchdog)
			} else {
				n.log.Error("not pinging the systemd watchdog: daemon is not healthy", "op", "watchdog")
			}
		}
	}
}
