//go:build linux

package cputime

import (
	"os"
	"os/exec"
	"testing"
	"time"
)

// TestTree: a process tree's CPU time counts a child that is busy, and
// a process that is gone is an error.
func TestTree(t *testing.T) {
	// A child that counts to 200,000 (a few hundred ms of CPU, without
	// starting a process), then sleeps until killed.
	cmd := exec.Command("sh", "-c", `i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done; exec sleep 60`)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cmd.Process.Kill()
		cmd.Wait()
	}()
	deadline := time.Now().Add(20 * time.Second)
	for {
		d, err := Tree(os.Getpid())
		if err != nil {
			t.Fatal(err)
		}
		child, err := Tree(cmd.Process.Pid)
		if err != nil {
			t.Fatal(err)
		}
		if child > 50*time.Millisecond {
			if d < child {
				t.Errorf("the tree's CPU time %v is less than its child's %v", d, child)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the child's CPU time is %v after 20s, want over 50ms", child)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if _, err := Tree(1 << 30); err == nil {
		t.Error("no error for a process that does not exist")
	}
}
