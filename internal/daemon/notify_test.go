package daemon

import (
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// listenNotify points NOTIFY_SOCKET at a datagram socket of the test's
// and returns a function that reads the next notification.
func listenNotify(t *testing.T) func() string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "notify.sock")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	t.Setenv("NOTIFY_SOCKET", path)
	return func() string {
		buf := make([]byte, 4096)
		c.SetReadDeadline(time.Now().Add(2 * time.Second))
		n, err := c.Read(buf)
		if err != nil {
			t.Fatalf("no notification: %v", err)
		}
		return string(buf[:n])
	}
}

func TestNotifier(t *testing.T) {
	next := listenNotify(t)
	n := NewNotifier(slog.New(slog.DiscardHandler))
	n.Ready("serving")
	if got := next(); !strings.Contains(got, "READY=1") || !strings.Contains(got, "STATUS=serving") {
		t.Errorf("Ready sent %q", got)
	}
	n.Reloading()
	if got := next(); !strings.Contains(got, "RELOADING=1") || !strings.Contains(got, "MONOTONIC_USEC=") {
		t.Errorf("Reloading sent %q", got)
	}
	n.Stopping()
	if got := next(); got != "STOPPING=1" {
		t.Errorf("Stopping sent %q", got)
	}
}

func TestWatchdog(t *testing.T) {
	next := listenNotify(t)
	t.Setenv("WATCHDOG_USEC", "100000") // 100ms: pings every 50ms
	t.Setenv("WATCHDOG_PID", "")
	n := NewNotifier(slog.New(slog.DiscardHandler))
	ctx, cancel := testContext(t)
	defer cancel()
	go n.Watchdog(ctx, func() bool { return true })
	for range 3 {
		if got := next(); got != "WATCHDOG=1" {
			t.Errorf("watchdog sent %q", got)
		}
	}
}
