package kv

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

// holdEnv names the data directory a re-executed test binary opens and
// keeps open until its stdin closes: another process holding the lock.
const holdEnv = "RINGFRONT_TEST_STORE_HOLD"

func TestMain(m *testing.M) {
	if dir := os.Getenv(holdEnv); dir != "" {
		st, err := Open(dir, Options{})
		if err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		fmt.Println("open")
		bufio.NewReader(os.Stdin).ReadString('\n') // until the test closes stdin
		st.Close()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestOpenLocked: a database another process has open is refused with
// the holder's pid, not pebble's "resource temporarily unavailable";
// opening it twice in one process says so.
func TestOpenLocked(t *testing.T) {
	dir := t.TempDir()
	child := exec.Command(os.Args[0], "-test.run=^$")
	child.Env = append(os.Environ(), holdEnv+"="+dir)
	stdin, err := child.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := child.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		stdin.Close()
		child.Wait()
	}()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || strings.TrimSpace(line) != "open" {
		t.Fatalf("the child did not open the store: %q, %v", line, err)
	}

	_, err = Open(dir, Options{})
	var le *LockedError
	if !errors.As(err, &le) {
		t.Fatalf("Open of a database another process holds = %v, want a *LockedError", err)
	}
	if le.PID != child.Process.Pid {
		t.Errorf("holder pid %d, want the child's %d", le.PID, child.Process.Pid)
	}
	// The test binary is not called appnode, so its name is given.
	want := "opening store in " + dir + ": another process holds this database (" + le.Command + ", pid " + strconv.Itoa(child.Process.Pid) +
		"): stop it, or give this member a data_dir of its own"
	if le.Command == "" || err.Error() != want {
		t.Errorf("Open error\n got %v\nwant %s", err, want)
	}
	le.Command = "appnode"
	if got, want := le.Error(), "another appnode holds this database (pid "+strconv.Itoa(child.Process.Pid)+"): stop it, or give this member a data_dir of its own"; got != want {
		t.Errorf("held by appnode: %q, want %q", got, want)
	}

	// Once the holder is gone the database opens; a second Open in the
	// same process is refused in words too.
	stdin.Close()
	if err := child.Wait(); err != nil {
		t.Fatalf("child: %v", err)
	}
	st, err := Open(dir, Options{})
	if err != nil {
		t.Fatalf("Open after the holder closed it: %v", err)
	}
	defer st.Close()
	if _, err := Open(dir, Options{}); !errors.As(err, &le) || !le.Self || !strings.Contains(err.Error(), "this process already has this database open") {
		t.Errorf("second Open in one process = %v", err)
	}
}
