package health

import (
	"errors"
	"fmt"
	"os/exec"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/ringfront/ringfront/internal/config"
)

// Check describes how and how often a target is probed. It is the
// `check:` section of dnslb services and vipwatch's `track:`.
type Check struct {
	// Type is tcp, http, https or exec.
	Type string `mapstructure:"type"`
	// Port is the port probed on the target's address; an exec check
	// may have one, passed on to its command.
	Port int `mapstructure:"port"`
	// Command is an exec check's program and arguments (no shell); see
	// exec.go for how the target's address reaches it.
	Command []string `mapstructure:"command"`
	// Path is the HTTP request path (http, https).
	Path string `mapstructure:"path"`
	// Host is the HTTP Host header and TLS server name; empty means the
	// target's address.
	Host string `mapstructure:"host"`
	// Expect lists the accepted HTTP status codes; empty means 200.
	Expect []int `mapstructure:"expect"`
	// Body, if set, must occur in the first 64 KiB of the response body.
	Body string `mapstructure:"body"`
	// InsecureSkipVerify turns off TLS certificate checks (https).
	InsecureSkipVerify bool `mapstructure:"insecure_skip_verify"`
	// Interval is the time between probes of one target.
	Interval time.Duration `mapstructure:"interval"`
	// Timeout bounds one probe; it must be shorter than Interval.
	Timeout time.Duration `mapstructure:"timeout"`
	// Rise is how many consecutive successes bring a down target up.
	Rise int `mapstructure:"rise"`
	// Fall is how many consecutive failures take an up target down.
	Fall int `mapstructure:"fall"`
}

// Check defaults, the values most load balancers ship with.
const (
	DefaultInterval = 2 * time.Second
	DefaultTimeout  = 1 * time.Second
	DefaultRise     = 2
	DefaultFall     = 3
)

// Validate fills defaults and checks the values; errors name the key
// relative to the check section (type, interval, ...).
func (c *Check) Validate() error {
	c.Type = strings.ToLower(c.Type)
	switch c.Type {
	case "":
		return config.Missing("type")
	case "tcp", "http", "https":
		if len(c.Command) > 0 {
			return config.Errorf("type", c.Type, "takes no command (that is for exec)")
		}
	case "exec":
		return c.validateExec()
	default:
		return config.Errorf("type", c.Type, "is not a check type (want tcp, http, https or exec)")
	}
	if c.Port == 0 {
		switch c.Type {
		case "http":
			c.Port = 80
		case "https":
			c.Port = 443
		default:
			return config.Missing("port")
		}
	}
	if c.Port < 1 || c.Port > 65535 {
		return config.Errorf("port", c.Port, "is not a port (1-65535)")
	}
	if c.Type == "tcp" {
		if c.Path != "" || c.Body != "" || len(c.Expect) > 0 || c.Host != "" {
			return config.Errorf("type", c.Type, "takes no path, host, expect or body (those are for http and https)")
		}
	} else {
		if c.Path == "" {
			c.Path = "/"
		}
		if !strings.HasPrefix(c.Path, "/") {
			return config.Errorf("path", c.Path, "must start with /")
		}
		if len(c.Expect) == 0 {
			c.Expect = []int{200}
		}
		for i, code := range c.Expect {
			if code < 100 || code > 599 {
				return config.Errorf(fmt.Sprintf("expect[%d]", i), code, "is not an HTTP status code")
			}
		}
		slices.Sort(c.Expect)
	}
	return c.validateTiming()
}

// validateExec checks an exec check: a command that can be found, no
// HTTP settings.
func (c *Check) validateExec() error {
	if len(c.Command) == 0 || c.Command[0] == "" {
		return config.Missing("command")
	}
	if _, err := exec.LookPath(c.Command[0]); err != nil {
		return config.Errorf("command[0]", c.Command[0], "cannot be run: %v", errors.Unwrap(err))
	}
	if c.Path != "" || c.Body != "" || len(c.Expect) > 0 || c.Host != "" || c.InsecureSkipVerify {
		return config.Errorf("type", c.Type, "takes no path, host, expect, body or insecure_skip_verify (those are for http and https)")
	}
	if c.Port < 0 || c.Port > 65535 {
		return config.Errorf("port", c.Port, "is not a port (1-65535)")
	}
	return c.validateTiming()
}

// validateTiming fills and checks interval, timeout, rise and fall.
func (c *Check) validateTiming() error {
	if c.Interval == 0 {
		c.Interval = DefaultInterval
	}
	if c.Interval < 10*time.Millisecond {
		return config.Errorf("interval", c.Interval, "is too short (at least 10ms)")
	}
	if c.Timeout == 0 {
		c.Timeout = min(DefaultTimeout, c.Interval/2)
	}
	if c.Timeout <= 0 || c.Timeout > c.Interval {
		return config.Errorf("timeout", c.Timeout, "must be positive and at most the interval (%v)", c.Interval)
	}
	if c.Rise == 0 {
		c.Rise = DefaultRise
	}
	if c.Fall == 0 {
		c.Fall = DefaultFall
	}
	if c.Rise < 1 || c.Rise > 100 {
		return config.Errorf("rise", c.Rise, "must be between 1 and 100")
	}
	if c.Fall < 1 || c.Fall > 100 {
		return config.Errorf("fall", c.Fall, "must be between 1 and 100")
	}
	return nil
}

// accepts reports whether status is in the check's accepted set.
func (c *Check) accepts(status int) bool {
	_, ok := slices.BinarySearch(c.Expect, status)
	return ok
}

// Equal reports whether c and o describe the same check.
func (c Check) Equal(o Check) bool {
	if !slices.Equal(c.Expect, o.Expect) || !slices.Equal(c.Command, o.Command) {
		return false
	}
	c.Expect, o.Expect = nil, nil
	c.Command, o.Command = nil, nil
	return reflect.DeepEqual(c, o)
}
