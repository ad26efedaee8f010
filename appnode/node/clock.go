//go:build !chaos

package node

import "time"

// ChaosClockEnv names the file whose duration moves the clock of a
// member built with -tags chaos (see clock_chaos.go). This build has no
// such knob: the variable is ignored and the member runs on the wall
// clock.
const ChaosClockEnv = "RINGFRONT_CHAOS_CLOCK_FILE"

// wallClock returns the clock the member uses: nil, the server's
// default (time.Now). Only a chaos build can shift it.
func wallClock() func() time.Time { return nil }
