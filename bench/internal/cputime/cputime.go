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

// Tree is the CPU time (user + system, from the scheduler's per-thread
// accounting in /proc/PID/task/TID/schedstat) of pid's threads and of
// all its descendants' threads (NSD and nginx fork their workers).
// Threads and processes that have exited are not counted.
func Tree(pid int) (time.Duration, error) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return 0, err
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
		return 0, fmt.Errorf("reading the CPU time of process %d: it is gone", pid)
	}
	var total int64
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
			if len(f) == 0 {
				continue
			}
			ns, _ := strconv.ParseInt(f[0], 10, 64)
			total += ns
		}
	}
	return time.Duration(total), nil
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
