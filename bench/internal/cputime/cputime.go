//go:build linux

// Package cputime reads how much CPU a process tree has used, from the
// scheduler's own accounting, for the benchmarks' CPU-per-request and
// per-query figures.
package cputime

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// Thread is one thread's share of the scheduler's accounting
// (/proc/PID/task/TID/schedstat).
type Thread struct {
	Comm string        // the thread's name
	CPU  time.Duration // user + system
	Runs int64         // times put on a CPU; below saturation, times it woke
}

// Threads is the scheduler's accounting of pid's threads and of all
// its descendants' threads (NSD and nginx fork their workers), keyed by
// "PID/TID". Threads and processes that have exited are not there.
func Threads(pid int) (map[string]Thread, error) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	parent := map[int]int{}
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 || i+2 > len(s) {
			continue
		}
		f := strings.Fields(s[i+2:])
		if len(f) < 2 {
			continue
		}
		parent[p], _ = strconv.Atoi(f[1])
	}
	if _, ok := parent[pid]; !ok {
		return nil, fmt.Errorf("reading the CPU time of process %d: it is gone", pid)
	}
	threads := map[string]Thread{}
	for p := range parent {
		in := false
		for q := p; q > 1; q = parent[q] {
			if q == pid {
				in = true
				break
			}
		}
		if !in {
			continue
		}
		tasks, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", p))
		for _, t := range tasks {
			b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/schedstat", p, t.Name()))
			if err != nil {
				continue
			}
			f := strings.Fields(string(b))
			if len(f) < 3 {
				continue
			}
			var th Thread
			ns, _ := strconv.ParseInt(f[0], 10, 64)
			th.CPU = time.Duration(ns)
			th.Runs, _ = strconv.ParseInt(f[2], 10, 64)
			comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/comm", p, t.Name()))
			th.Comm = strings.TrimSpace(string(comm))
			threads[fmt.Sprintf("%d/%s", p, t.Name())] = th
		}
	}
	return threads, nil
}

// Tree is the CPU time (user + system, from the scheduler's per-thread
// accounting) of pid's threads and of all its descendants' threads.
// Threads and processes that have exited are not counted.
func Tree(pid int) (time.Duration, error) {
	threads, err := Threads(pid)
	var total time.Duration
	for _, t := range threads {
		total += t.CPU
	}
	return total, err
}

// Trees is the sum of Tree over pids.
func Trees(pids ...int) (time.Duration, error) {
	var sum time.Duration
	for _, p := range pids {
		d, err := Tree(p)
		if err != nil {
			return 0, err
		}
		sum += d
	}
	return sum, nil
}
