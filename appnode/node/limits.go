package node

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/time/rate"

	"github.com/ringfront/ringfront/appnode/limits"
	"github.com/ringfront/ringfront/appnode/server"
	"github.com/ringfront/ringfront/internal/config"
	"github.com/ringfront/ringfront/internal/daemon"
)

// LimitsConfig is the `limits:` section: rate limits per client network
// (IPv4 address, IPv6 /64) and per signed-in user, each a rate and a
// burst, for the whole cluster (each member enforces its share of the
// address rules; see appnode/limits).
type LimitsConfig struct {
	// Enabled turns the limits on (default true).
	Enabled *bool `mapstructure:"enabled"`
	// TableSize bounds each limiter table (addresses, users) in buckets
	// (default limits.DefaultTableSize).
	TableSize int `mapstructure:"table_size"`
	// Exempt lists the networks never limited (default loopback).
	Exempt  []netip.Prefix `mapstructure:"exempt"`
	Signups SignupLimits   `mapstructure:"signups"`
	Posts   KindLimits     `mapstructure:"posts"`
	Follows KindLimits     `mapstructure:"follows"`
	Reads   KindLimits     `mapstructure:"reads"`
}

// SignupLimits limit sign-ups per client network (nobody is signed in
// yet).
type SignupLimits struct {
	Address RateConfig `mapstructure:"address"`
}

// KindLimits limit one kind of request per client network and per
// user.
type KindLimits struct {
	Address RateConfig `mapstructure:"address"`
	User    RateConfig `mapstructure:"user"`
}

// RateConfig is one token bucket: Rate is "N/s", "N/m" or "N/h" (N a
// number above 0) or "off"; Burst is how many requests may come at once.
type RateConfig struct {
	Rate  string `mapstructure:"rate"`
	Burst int    `mapstructure:"burst"`
}

// The default limits: generous for a person, even behind a shared
// address (an office, carrier-grade NAT), tight for a script.
var defaultLimits = struct {
	signup                     RateConfig
	post, follow, read         KindLimits
	tableSize                  int
	exempt                     []netip.Prefix
	maxBurst                   int
	maxRate                    rate.Limit
	minTableSize, maxTableSize int
}{
	// 20 accounts an hour from one network, 10 at once.
	signup: RateConfig{"20/h", 10},
	// One post a second per user, 30 at once (a thread); ten times that
	// per network.
	post: KindLimits{Address: RateConfig{"10/s", 100}, User: RateConfig{"1/s", 30}},
	// Following a hundred accounts at once when signing up.
	follow: KindLimits{Address: RateConfig{"10/s", 200}, User: RateConfig{"2/s", 100}},
	// A busy client reads a few pages a second.
	read:      KindLimits{Address: RateConfig{"100/s", 400}, User: RateConfig{"20/s", 200}},
	tableSize: limits.DefaultTableSize,
	// A process on the member's own machine is the operator's.
	exempt:       []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")},
	maxBurst:     1_000_000,
	maxRate:      1_000_000,
	minTableSize: 1024,
	maxTableSize: 16 << 20,
}

// validate fills the defaults of the limits section and checks it.
func (l *LimitsConfig) validate() error {
	if l.Enabled == nil {
		on := true
		l.Enabled = &on
	}
	if l.TableSize == 0 {
		l.TableSize = defaultLimits.tableSize
	}
	if l.TableSize < defaultLimits.minTableSize || l.TableSize > defaultLimits.maxTableSize {
		return config.Errorf("limits.table_size", l.TableSize, "is not from %d to %d buckets", defaultLimits.minTableSize, defaultLimits.maxTableSize)
	}
	if l.Exempt == nil {
		l.Exempt = slices.Clone(defaultLimits.exempt)
	}
	for i, p := range l.Exempt {
		if !p.IsValid() {
			return config.Errorf(fmt.Sprintf("limits.exempt[%d]", i), "", "is empty: give a network such as 198.51.100.0/24")
		}
		l.Exempt[i] = p.Masked()
	}
	for _, r := range []struct {
		key  string
		rule *RateConfig
		def  RateConfig
	}{
		{"limits.signups.address", &l.Signups.Address, defaultLimits.signup},
		{"limits.posts.address", &l.Posts.Address, defaultLimits.post.Address},
		{"limits.posts.user", &l.Posts.User, defaultLimits.post.User},
		{"limits.follows.address", &l.Follows.Address, defaultLimits.follow.Address},
		{"limits.follows.user", &l.Follows.User, defaultLimits.follow.User},
		{"limits.reads.address", &l.Reads.Address, defaultLimits.read.Address},
		{"limits.reads.user", &l.Reads.User, defaultLimits.read.User},
	} {
		if err := r.rule.validate(r.key, r.def); err != nil {
			return err
		}
	}
	return nil
}

// validate fills a rule's defaults from def and checks it.
func (r *RateConfig) validate(key string, def RateConfig) error {
	if r.Rate == "" {
		r.Rate = def.Rate
	}
	if r.Burst == 0 {
		r.Burst = def.Burst
	}
	lim, err := parseRate(r.Rate)
	if err != nil {
		return config.Errorf(key+".rate", r.Rate, "%v", err)
	}
	if lim > defaultLimits.maxRate {
		return config.Errorf(key+".rate", r.Rate, "is over %g per second", float64(defaultLimits.maxRate))
	}
	if r.Burst < 1 || r.Burst > defaultLimits.maxBurst {
		return config.Errorf(key+".burst", r.Burst, "is not from 1 to %d requests", defaultLimits.maxBurst)
	}
	return nil
}

// parseRate reads "N/s", "N/m", "N/h" or "off" (0: no limit).
func parseRate(s string) (rate.Limit, error) {
	s = strings.TrimSpace(s)
	if s == "off" {
		return 0, nil
	}
	num, unit, ok := strings.Cut(s, "/")
	per := map[string]time.Duration{"s": time.Second, "m": time.Minute, "h": time.Hour}[unit]
	n, err := strconv.ParseFloat(num, 64)
	if !ok || per == 0 || err != nil || !(n > 0) || n > 1e12 {
		return 0, fmt.Errorf("is not a rate: write it like 10/s, 30/m or 20/h (a number above 0 per second, minute or hour), or off")
	}
	return rate.Limit(n / per.Seconds()), nil
}

// limitsConfig is the limiter's configuration (the zero Config, which
// limits nothing, when limits are off). The config was validated.
func (l *LimitsConfig) limitsConfig() limits.Config {
	var c limits.Config
	if l.Enabled == nil || !*l.Enabled {
		return c
	}
	c.TableSize, c.Exempt = l.TableSize, l.Exempt
	rule := func(r RateConfig) limits.Rule {
		lim, _ := parseRate(r.Rate)
		if lim == 0 {
			return limits.Rule{}
		}
		return limits.Rule{Rate: lim, Burst: r.Burst}
	}
	c.Address[limits.Signup] = rule(l.Signups.Address)
	for k, kl := range map[limits.Kind]KindLimits{limits.Post: l.Posts, limits.Follow: l.Follows, limits.Read: l.Reads} {
		c.Address[k], c.User[k] = rule(kl.Address), rule(kl.User)
	}
	return c
}

// HTTPConfig is the `http:` section: the API listener's bounds on one
// client (daemon.HTTPBounds); defaults server.DefaultBounds. Set at
// start only.
type HTTPConfig struct {
	MaxHeaderBytes    int           `mapstructure:"max_header_bytes"`
	ReadHeaderTimeout time.Duration `mapstructure:"read_header_timeout"`
	ReadTimeout       time.Duration `mapstructure:"read_timeout"`
	WriteTimeout      time.Duration `mapstructure:"write_timeout"`
	IdleTimeout       time.Duration `mapstructure:"idle_timeout"`
}

// validate fills the http section's defaults and checks it.
func (h *HTTPConfig) validate() error {
	d := server.DefaultBounds
	if h.MaxHeaderBytes == 0 {
		h.MaxHeaderBytes = d.MaxHeaderBytes
	}
	if h.MaxHeaderBytes < 1<<10 || h.MaxHeaderBytes > 1<<20 {
		return config.Errorf("http.max_header_bytes", h.MaxHeaderBytes, "is not from 1024 to 1048576 bytes")
	}
	for _, f := range []struct {
		key string
		v   *time.Duration
		def time.Duration
	}{
		{"http.read_header_timeout", &h.ReadHeaderTimeout, d.ReadHeaderTimeout},
		{"http.read_timeout", &h.ReadTimeout, d.ReadTimeout},
		{"http.write_timeout", &h.WriteTimeout, d.WriteTimeout},
		{"http.idle_timeout", &h.IdleTimeout, d.IdleTimeout},
	} {
		if *f.v == 0 {
			*f.v = f.def
		}
		if *f.v < 100*time.Millisecond || *f.v > time.Hour {
			return config.Errorf(f.key, *f.v, "is not from 100ms to 1h")
		}
	}
	if h.ReadTimeout < h.ReadHeaderTimeout {
		return config.Errorf("http.read_timeout", h.ReadTimeout, "is shorter than http.read_header_timeout (%v), which it includes", h.ReadHeaderTimeout)
	}
	return nil
}

// bounds is the listener's daemon.HTTPBounds.
func (h HTTPConfig) bounds() daemon.HTTPBounds {
	return daemon.HTTPBounds{MaxHeaderBytes: h.MaxHeaderBytes, ReadHeaderTimeout: h.ReadHeaderTimeout,
		ReadTimeout: h.ReadTimeout, WriteTimeout: h.WriteTimeout, IdleTimeout: h.IdleTimeout}
}
