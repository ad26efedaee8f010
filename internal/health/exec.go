package health

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Exec checks run a command (no shell) with the target's address: each
// "{address}" in the arguments is replaced by it, or, if no argument has
// one, it is appended as the last argument; the environment adds
// RINGFRONT_TARGET_ADDRESS, RINGFRONT_TARGET_PORT (when the check has a
// port) and RINGFRONT_TARGET_ID. Exit status 0 is healthy. At the
// check's timeout the command and everything it started (its process
// group) are killed. The first line of its output (stdout and stderr) is
// kept as the result's message; only the first outputLimit bytes are
// kept, the rest is read and thrown away so a chatty command is neither
// blocked nor buffered.

// outputLimit bounds how much of an exec check's output is kept.
const outputLimit = 4 << 10

// messageLimit bounds the message kept from an exec check's first line.
const messageLimit = 200

// killGrace is how long, after the kill at the timeout, the probe waits
// for the command's output to close (a process that escaped the group
// may still hold it) before giving up on it.
const killGrace = time.Second

func (p *NetProber) probeExec(ctx context.Context, t Target) (msg string, err error) {
	args := execArgs(t)
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = append(os.Environ(),
		"RINGFRONT_TARGET_ADDRESS="+t.Addr.String(),
		"RINGFRONT_TARGET_ID="+t.ID)
	if t.Check.Port != 0 {
		cmd.Env = append(cmd.Env, "RINGFRONT_TARGET_PORT="+strconv.Itoa(t.Check.Port))
	}
	out := &firstBytes{limit: outputLimit}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.WaitDelay = killGrace
	if err := cmd.Start(); err != nil {
		return "", fmt.Errorf("starting %s: %w", args[0], err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err = <-done:
	case <-ctx.Done():
		// The whole process group: a shell's children too.
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
		return firstLine(out.bytes()), errors.New("timeout: killed")
	}
	msg = firstLine(out.bytes())
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return msg, errors.New(ee.ProcessState.String()) // "exit status 2", "signal: killed"
		}
		return msg, err
	}
	return msg, nil
}

// execArgs is the check's command with the target's address in it.
func execArgs(t Target) []string {
	addr := t.Addr.String()
	args := make([]string, 0, len(t.Check.Command)+1)
	placed := false
	for _, a := range t.Check.Command {
		if strings.Contains(a, "{address}") {
			a = strings.ReplaceAll(a, "{address}", addr)
			placed = true
		}
		args = append(args, a)
	}
	if !placed {
		args = append(args, addr)
	}
	return args
}

// firstLine is the first non-empty line of out, cut to messageLimit.
func firstLine(out []byte) string {
	for _, line := range bytes.Split(out, []byte("\n")) {
		s := strings.TrimSpace(strings.ToValidUTF8(string(line), "?"))
		if s == "" {
			continue
		}
		if len(s) > messageLimit {
			s = strings.ToValidUTF8(s[:messageLimit], "") + "..."
		}
		return s
	}
	return ""
}

// firstBytes keeps the first limit bytes written to it and discards the
// rest. It is safe for concurrent use (stdout and stderr share it).
type firstBytes struct {
	mu    sync.Mutex // guards buf
	buf   []byte
	limit int
}

func (w *firstBytes) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if room := w.limit - len(w.buf); room > 0 {
		w.buf = append(w.buf, p[:min(room, len(p))]...)
	}
	return len(p), nil
}

func (w *firstBytes) bytes() []byte {
	w.mu.Lock()
	defer w.mu.Unlock()
	return bytes.Clone(w.buf)
}
