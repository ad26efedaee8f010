package health

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func execTarget(t *testing.T, timeout time.Duration, command ...string) Target {
	t.Helper()
	c := Check{Type: "exec", Command: command, Port: 8080, Interval: time.Minute, Timeout: timeout}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	return Target{ID: "www.example.org./198.51.100.10", Addr: netip.MustParseAddr("198.51.100.10"), Check: c}
}

func probeExec(t *testing.T, target Target) Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), target.Check.Timeout)
	defer cancel()
	return NewNetProber().Probe(ctx, target)
}

func TestExecCheck(t *testing.T) {
	tests := []struct {
		name    string
		command []string
		want    string // Result.String()
	}{
		{"healthy, address appended", []string{"/bin/sh", "-c", `echo "up at $0"; exit 0`}, "ok: up at 198.51.100.10"},
		{"address placeholder", []string{"/bin/sh", "-c", `echo "probing $1 then"`, "x", "{address}:8080"}, "ok: probing 198.51.100.10:8080 then"},
		{"environment", []string{"/bin/sh", "-c", `echo "$RINGFRONT_TARGET_ADDRESS $RINGFRONT_TARGET_PORT $RINGFRONT_TARGET_ID"`}, "ok: 198.51.100.10 8080 www.example.org./198.51.100.10"},
		{"failing, first line kept", []string{"/bin/sh", "-c", "echo; echo 'disk full on /var'; echo second line; exit 2"}, "fail: exit status 2: disk full on /var"},
		{"stderr counts", []string{"/bin/sh", "-c", "echo 'no upstream' >&2; exit 1"}, "fail: exit status 1: no upstream"},
		{"silent failure", []string{"false"}, "fail: exit status 1"},
		{"killed by a signal", []string{"/bin/sh", "-c", "kill -TERM $$"}, "fail: signal: terminated"},
		{"long line cut", []string{"/bin/sh", "-c", "printf '%0300d\\n' 7"}, "ok: " + strings.Repeat("0", 200) + "..."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := probeExec(t, execTarget(t, 5*time.Second, tt.command...))
			if got := res.String(); got != tt.want {
				t.Errorf("Probe = %q, want %q", got, tt.want)
			}
		})
	}
}

// A command that hangs, with a child that keeps its output open, is
// killed with its whole process group at the timeout.
func TestExecCheckHangs(t *testing.T) {
	target := execTarget(t, 300*time.Millisecond, "/bin/sh", "-c", "echo starting; sleep 60 & sleep 60")
	start := time.Now()
	res := probeExec(t, target)
	if res.OK || res.Err != "timeout: killed" || res.Message != "starting" {
		t.Errorf("Probe of a hanging command = %+v", res)
	}
	// Far below the children's 60 s: they were killed, not waited for.
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("Probe returned after %v", d)
	}
}

// A command that floods its output is neither blocked nor buffered
// whole: its first line is kept and it runs to its end.
func TestExecCheckFloods(t *testing.T) {
	target := execTarget(t, 20*time.Second, "/bin/sh", "-c", "echo first; head -c 50000000 /dev/zero; exit 3")
	res := probeExec(t, target)
	if res.OK || res.Err != "exit status 3" || res.Message != "first" {
		t.Errorf("Probe of a flooding command = %+v", res)
	}
}

func TestFirstBytesKeepsTheStart(t *testing.T) {
	w := &firstBytes{limit: 8}
	for _, s := range []string{"abc", "defgh", "ijk"} {
		if n, err := w.Write([]byte(s)); n != len(s) || err != nil {
			t.Fatalf("Write(%q) = %d, %v", s, n, err)
		}
	}
	if got := string(w.bytes()); got != "abcdefgh" {
		t.Errorf("kept %q", got)
	}
}
