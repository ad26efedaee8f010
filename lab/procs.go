package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// proc is a daemon the lab started, identified by PID and the kernel's
// start time of that PID, so a stop never signals a process that merely
// reused the number.
type proc struct {
	Host  string `json:"host"`
	Name  string `json:"name"`
	PID   int    `json:"pid"`
	Start uint64 `json:"start"` // field 22 of /proc/PID/stat
	Log   string `json:"log"`
	// Args and Env start it again (a drill's heal).
	Args []string `json:"args"`
	Env  []string `json:"env,omitempty"`
}

func procsFile(run string) string { return filepath.Join(run, "procs.json") }

func loadProcs(run string) ([]proc, error) {
	b, err := os.ReadFile(procsFile(run))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var ps []proc
	if err := json.Unmarshal(b, &ps); err != nil {
		return nil, fmt.Errorf("reading %s: %w", procsFile(run), err)
	}
	return ps, nil
}

func saveProcs(run string, ps []proc) error {
	b, _ := json.MarshalIndent(ps, "", "  ")
	return os.WriteFile(procsFile(run), b, 0o644)
}

func startTime(pid int) (uint64, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(s[i+2:])
	if len(f) < 20 || f[0] == "Z" {
		return 0, false
	}
	v, err := strconv.ParseUint(f[19], 10, 64)
	return v, err == nil
}

// alive reports whether p is still the process the lab started.
func (p proc) alive() bool {
	st, ok := startTime(p.PID)
	return ok && st == p.Start
}

// startDaemon runs args in host's namespace, detached from the lab
// command (its own session, output to a log file), and records it.
func startDaemon(run, host, name string, env []string, args ...string) (proc, error) {
	logPath := filepath.Join(run, host, name+".log")
	os.MkdirAll(filepath.Dir(logPath), 0o755)
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return proc{}, err
	}
	defer logf.Close()
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns(host)}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return proc{}, fmt.Errorf("starting %s on %s: %w", name, host, err)
	}
	p := proc{Host: host, Name: name, PID: cmd.Process.Pid, Log: logPath, Args: args, Env: env}
	p.Start, _ = startTime(p.PID)
	cmd.Process.Release()
	return p, nil
}

// stop ends p: SIGTERM, then SIGKILL after grace.
func (p proc) stop(sig syscall.Signal, grace time.Duration) {
	if !p.alive() {
		return
	}
	syscall.Kill(p.PID, sig)
	deadline := time.Now().Add(grace)
	for time.Now().Before(deadline) {
		if !p.alive() {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	syscall.Kill(p.PID, syscall.SIGKILL)
	for i := 0; i < 100 && p.alive(); i++ {
		time.Sleep(10 * time.Millisecond)
	}
}
