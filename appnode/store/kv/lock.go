package kv

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// LockedError is Open's error for a database another process has open:
// pebble holds a POSIX lock on the LOCK file in the data directory for
// as long as the database is open.
type LockedError struct {
	Dir string
	// PID is the lock holder's process id, as the kernel reports it (0:
	// unknown, such as a holder in another PID namespace).
	PID int
	// Command is the holder's command name (from /proc), if known.
	Command string
	// Self is true when this process holds it (the store opened twice).
	Self bool
}

func (e *LockedError) Error() string {
	var who string
	switch {
	case e.Self:
		return "this process already has this database open"
	case e.PID == 0:
		who = "another process holds this database"
	case e.Command == "appnode" || e.Command == "":
		who = fmt.Sprintf("another appnode holds this database (pid %d)", e.PID)
	default:
		who = fmt.Sprintf("another process holds this database (%s, pid %d)", e.Command, e.PID)
	}
	return who + ": stop it, or give this member a data_dir of its own"
}

// lockedError turns pebble's failure to lock dir into a *LockedError
// that names the holder, or returns err as it is when the lock is not
// what failed.
func lockedError(dir string, err error) error {
	if strings.Contains(err.Error(), "lock held by current process") {
		return &LockedError{Dir: dir, Self: true}
	}
	if !errors.Is(err, syscall.EAGAIN) && !errors.Is(err, syscall.EACCES) {
		return err
	}
	pid, ok := lockHolder(filepath.Join(dir, "LOCK"))
	if !ok {
		return err // not a lock conflict after all (permissions)
	}
	le := &LockedError{Dir: dir, PID: pid}
	if pid > 0 {
		if b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "comm")); err == nil {
			le.Command = strings.TrimSpace(string(b))
		}
	}
	return le
}

// lockHolder asks the kernel (F_GETLK) which process holds a write lock
// on path; ok is false when nobody does.
func lockHolder(path string) (pid int, ok bool) {
	f, err := os.Open(path)
	if err != nil {
		return 0, false
	}
	defer f.Close()
	spec := unix.Flock_t{Type: unix.F_WRLCK, Whence: io.SeekStart}
	if err := unix.FcntlFlock(f.Fd(), unix.F_GETLK, &spec); err != nil || spec.Type == unix.F_UNLCK {
		return 0, false
	}
	return int(spec.Pid), true
}
