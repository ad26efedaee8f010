//go:build chaos

package node

import (
	"os"
	"strings"
	"sync"
	"time"
)

// ChaosClockEnv names a file holding a Go duration ("60s", "-60s",
// "0s") that a member built with -tags chaos adds to time.Now. The
// chaos test (appnode/chaos) writes it to move one member's clock while
// the member runs; network namespaces cannot move the wall clock. A
// missing file is an offset of 0.
const ChaosClockEnv = "RINGFRONT_CHAOS_CLOCK_FILE"

// clockReread is how long an offset read from the file is used before
// the file is read again: short next to a chaos fault window (seconds),
// long next to the time between two ids a busy member hands out.
const clockReread = 50 * time.Millisecond

// wallClock returns the clock the member uses: time.Now plus the offset
// in the file ChaosClockEnv names, or nil (time.Now) when it names none.
func wallClock() func() time.Time {
	path := os.Getenv(ChaosClockEnv)
	if path == "" {
		return nil
	}
	return (&offsetClock{path: path}).Now
}

// offsetClock is time.Now moved by the duration in a file, re-read at
// most every clockReread. It is safe for concurrent use.
type offsetClock struct {
	path string

	mu     sync.Mutex // guards offset and read
	offset time.Duration
	read   time.Time
}

// Now is the wall clock plus the file's offset.
func (c *offsetClock) Now() time.Time {
	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.read.IsZero() || now.Sub(c.read) >= clockReread {
		c.offset = readOffset(c.path, c.offset)
		c.read = now
	}
	return now.Add(c.offset)
}

// readOffset reads the duration in path: 0 when the file does not
// exist, last when it cannot be read or parsed (the writer replaces it
// whole, so that is a transient state at most).
func readOffset(path string, last time.Duration) time.Duration {
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return 0
	}
	if err != nil {
		return last
	}
	d, err := time.ParseDuration(strings.TrimSpace(string(b)))
	if err != nil {
		return last
	}
	return d
}
