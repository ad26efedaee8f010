// Package config is dnslb's configuration: listeners, the admin API, and
// the zones with their static records and health-checked services.
package config

import (
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/miekg/dns"

	"github.com/ringfront/ringfront/dnslb/rrl"
	iconfig "github.com/ringfront/ringfront/internal/config"
	"github.com/ringfront/ringfront/internal/daemon"
	"github.com/ringfront/ringfront/internal/health"
)

// EnvPrefix prefixes dnslb's environment overrides (DNSLB_ADMIN_LISTEN).
const EnvPrefix = "DNSLB"

// Config is dnslb's whole configuration.
type Config struct {
	// Listen lists the addresses served, each on UDP and TCP.
	Listen []string           `mapstructure:"listen"`
	Admin  daemon.AdminConfig `mapstructure:"admin"`
	Log    daemon.LogConfig   `mapstructure:"log"`
	// UDPSize is the largest UDP answer sent to an EDNS client (RFC 8906
	// and the DNS flag day 2020 recommend 1232, which avoids IP
	// fragmentation on every common path).
	UDPSize int `mapstructure:"udp_size"`
	// Sockets is the number of SO_REUSEPORT UDP sockets per listen
	// address; 0 means one per CPU.
	Sockets int       `mapstructure:"sockets"`
	TCP     TCPConfig `mapstructure:"tcp"`
	// LameDuck is how long dnslb keeps answering after SIGTERM while
	// /readyz already says it is going away.
	LameDuck time.Duration `mapstructure:"lame_duck"`
	// StartupTimeout bounds the wait for the first health round.
	StartupTimeout time.Duration `mapstructure:"startup_timeout"`
	// RRL is response rate limiting per client prefix (off by default).
	RRL rrl.Config `mapstructure:"rrl"`
	// CookieSecretFile holds 32 hex digits (16 bytes), the DNS cookie
	// secret that servers answering for the same name should share;
	// empty means a random secret per process.
	CookieSecretFile string `mapstructure:"cookie_secret_file"`
	// CookieSecret is read from CookieSecretFile by Validate.
	CookieSecret []byte `mapstructure:"-" secret:"true"`
	// StateDir is where the admin state file (drains, with who made them
	// and why) is kept, so drains survive a restart. Empty means
	// $STATE_DIRECTORY, which systemd sets from the unit's
	// StateDirectory=; with neither, drains live in memory only.
	StateDir string `mapstructure:"state_dir"`
	// TSIGKeys are the keys secondaries sign their transfer requests with.
	TSIGKeys []TSIGKey `mapstructure:"tsig_keys"`
	Zones    []Zone    `mapstructure:"zones"`

	// Dir is the config file's directory, where zone files are read
	// from; Load sets it. Empty means the working directory.
	Dir string `mapstructure:"-"`
}

// TSIGKey is a shared key for TSIG (RFC 8945).
type TSIGKey struct {
	Name      string `mapstructure:"name"`
	Algorithm string `mapstructure:"algorithm"`
	// SecretFile holds the base64 secret, as tsig-keygen prints it
	// (either the bare secret or the whole key clause).
	SecretFile string `mapstructure:"secret_file"`

	// Secret is the base64 secret read from SecretFile by Validate.
	Secret string `mapstructure:"-" secret:"true"`
}

// Secondary is a standard authoritative server (NSD, Knot, BIND) that
// transfers the zone from dnslb and is sent NOTIFY on every change.
type Secondary struct {
	// Address is where NOTIFY goes (ip:port); transfers are allowed
	// from its IP.
	Address string `mapstructure:"address"`
	// TSIGKey names the key in tsig_keys that signs transfers and
	// notifies; empty means none (allowed, not recommended).
	TSIGKey string `mapstructure:"tsig_key"`

	// AddrPort is Address parsed, filled by Validate.
	AddrPort netip.AddrPort `mapstructure:"-"`
}

// TCPConfig bounds DNS over TCP.
type TCPConfig struct {
	// MaxConnections bounds open TCP connections per listen address.
	MaxConnections int `mapstructure:"max_connections"`
	// MaxConnectionsPerClient bounds open connections from one address,
	// so one client cannot take every slot.
	MaxConnectionsPerClient int `mapstructure:"max_connections_per_client"`
	// MaxLifetime closes a connection this long after it was accepted,
	// however busy: a slow client cannot hold a slot for ever.
	MaxLifetime time.Duration `mapstructure:"max_lifetime"`
	// IdleTimeout closes a connection with no query for this long
	// (RFC 7766 suggests seconds, not minutes).
	IdleTimeout time.Duration `mapstructure:"idle_timeout"`
	// MaxQueries closes a connection after this many queries; 0 means no limit.
	MaxQueries int `mapstructure:"max_queries"`
}

// Zone is one zone dnslb is authoritative for.
type Zone struct {
	Origin  string   `mapstructure:"origin"`
	TTL     uint32   `mapstructure:"ttl"`
	SOA     SOA      `mapstructure:"soa"`
	NS      []NS     `mapstructure:"ns"`
	Records []string `mapstructure:"records"`
	// ZoneFile is an RFC 1035 master file with static records, beside
	// or instead of Records; a relative path is taken from the config
	// directory, and it and its $INCLUDEs must lie inside that
	// directory. It may hold the SOA (when soa is not set here) and the
	// apex NS records (when ns is not set here).
	ZoneFile string    `mapstructure:"zone_file"`
	Services []Service `mapstructure:"services"`
	// Secondaries transfer this zone from dnslb (AXFR/IXFR) and get
	// NOTIFY whenever the health view or the config changes it.
	Secondaries []Secondary `mapstructure:"secondaries"`

	// FileRecords are ZoneFile's records less the SOA, the apex NS and
	// what services override; filled by Validate.
	FileRecords []dns.RR `mapstructure:"-"`
	// Warnings say which zone-file records services override; filled by
	// Validate, for the server to log.
	Warnings []string `mapstructure:"-"`
}

// SOA is the zone's start of authority. Serial 0 means "the time of
// loading", so a reload always moves it forward.
type SOA struct {
	MName   string `mapstructure:"mname"`
	RName   string `mapstructure:"rname"`
	Serial  uint32 `mapstructure:"serial"`
	Refresh uint32 `mapstructure:"refresh"`
	Retry   uint32 `mapstructure:"retry"`
	Expire  uint32 `mapstructure:"expire"`
	Minimum uint32 `mapstructure:"minimum"`
}

// NS is one name server of the zone, with glue addresses when the name is
// inside the zone.
type NS struct {
	Name      string   `mapstructure:"name"`
	Addresses []string `mapstructure:"addresses"`
}

// Service is a health-checked name.
type Service struct {
	Name        string       `mapstructure:"name"`
	TTL         uint32       `mapstructure:"ttl"`
	DegradedTTL uint32       `mapstructure:"degraded_ttl"`
	MaxAnswers  int          `mapstructure:"max_answers"`
	AllDown     string       `mapstructure:"all_down"`
	Targets     []string     `mapstructure:"targets"`
	Check       health.Check `mapstructure:"check"`

	// Addrs are Targets parsed, filled by Validate.
	Addrs []netip.Addr `mapstructure:"-"`
}

// All-down policies.
const (
	AllDownAll  = "all"  // fail open: answer every target
	AllDownNone = "none" // answer NODATA
)

// Defaults.
const (
	DefaultUDPSize        = 1232
	DefaultMaxConnections = 256
	DefaultIdleTimeout    = 10 * time.Second
	DefaultZoneTTL        = 3600
	DefaultServiceTTL     = 30
	DefaultStartupTimeout = 30 * time.Second
)

// Validate fills defaults and checks every value; errors name the key.
func (c *Config) Validate() error {
	if len(c.Listen) == 0 {
		c.Listen = []string{"127.0.0.1:5353"}
	}
	for i, l := range c.Listen {
		if err := listenAddr(l); err != nil {
			return iconfig.Errorf(fmt.Sprintf("listen[%d]", i), l, "%v", err)
		}
	}
	if err := c.Admin.Validate("127.0.0.1:8053"); err != nil {
		return iconfig.Join("admin", err)
	}
	if err := c.Log.Validate(); err != nil {
		return iconfig.Join("log", err)
	}
	if c.UDPSize == 0 {
		c.UDPSize = DefaultUDPSize
	}
	if c.UDPSize < 512 || c.UDPSize > 65535 {
		return iconfig.Errorf("udp_size", c.UDPSize, "must be between 512 and 65535")
	}
	if c.Sockets < 0 || c.Sockets > 256 {
		return iconfig.Errorf("sockets", c.Sockets, "must be between 0 (one per CPU) and 256")
	}
	if c.TCP.MaxConnections == 0 {
		c.TCP.MaxConnections = DefaultMaxConnections
	}
	if c.TCP.MaxConnections < 1 {
		return iconfig.Errorf("tcp.max_connections", c.TCP.MaxConnections, "must be positive")
	}
	if c.TCP.MaxConnectionsPerClient == 0 {
		c.TCP.MaxConnectionsPerClient = max(1, min(16, c.TCP.MaxConnections/4))
	}
	if c.TCP.MaxConnectionsPerClient < 1 || c.TCP.MaxConnectionsPerClient > c.TCP.MaxConnections {
		return iconfig.Errorf("tcp.max_connections_per_client", c.TCP.MaxConnectionsPerClient, "must be between 1 and tcp.max_connections (%d)", c.TCP.MaxConnections)
	}
	if c.TCP.MaxLifetime == 0 {
		c.TCP.MaxLifetime = 2 * time.Minute
	}
	if c.TCP.MaxLifetime < 0 {
		return iconfig.Errorf("tcp.max_lifetime", c.TCP.MaxLifetime, "must be positive")
	}
	if c.TCP.IdleTimeout == 0 {
		c.TCP.IdleTimeout = DefaultIdleTimeout
	}
	if c.TCP.IdleTimeout < 0 {
		return iconfig.Errorf("tcp.idle_timeout", c.TCP.IdleTimeout, "must be positive")
	}
	if c.TCP.MaxQueries < 0 {
		return iconfig.Errorf("tcp.max_queries", c.TCP.MaxQueries, "must not be negative")
	}
	if c.LameDuck < 0 {
		return iconfig.Errorf("lame_duck", c.LameDuck, "must not be negative")
	}
	if c.StartupTimeout == 0 {
		c.StartupTimeout = DefaultStartupTimeout
	}
	if c.StateDir == "" {
		// systemd lists one directory per StateDirectory= entry.
		c.StateDir, _, _ = strings.Cut(os.Getenv("STATE_DIRECTORY"), ":")
	}
	if c.StateDir != "" && !filepath.IsAbs(c.StateDir) {
		return iconfig.Errorf("state_dir", c.StateDir, "must be an absolute path")
	}
	if err := c.RRL.Validate(); err != nil {
		return iconfig.Join("rrl", err)
	}
	if c.CookieSecretFile != "" {
		raw, err := iconfig.Secret("cookie_secret_file", c.CookieSecretFile)
		if err != nil {
			return err
		}
		b, err := hex.DecodeString(string(raw))
		if err != nil || len(b) != 16 {
			return iconfig.Errorf("cookie_secret_file", c.CookieSecretFile, "must hold 32 hex digits (16 bytes)")
		}
		c.CookieSecret = b
	}
	keys := map[string]bool{}
	for i := range c.TSIGKeys {
		k := &c.TSIGKeys[i]
		if err := k.validate(); err != nil {
			return iconfig.Join(fmt.Sprintf("tsig_keys[%d]", i), err)
		}
		if keys[k.Name] {
			return iconfig.Errorf(fmt.Sprintf("tsig_keys[%d].name", i), k.Name, "is defined twice")
		}
		keys[k.Name] = true
	}
	if len(c.Zones) == 0 {
		return iconfig.Missing("zones")
	}
	origins := map[string]int{}
	for i := range c.Zones {
		z := &c.Zones[i]
		key := fmt.Sprintf("zones[%d]", i)
		if err := z.validate(keys, c.Dir); err != nil {
			return iconfig.Join(key, err)
		}
		if j, dup := origins[z.Origin]; dup {
			return iconfig.Errorf(key+".origin", z.Origin, "is also zones[%d].origin", j)
		}
		origins[z.Origin] = i
	}
	return nil
}

// listenAddr checks an address to serve DNS on: host:port, the port a
// number (0: any free port).
func listenAddr(s string) error {
	_, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Errorf("is not host:port (like 198.51.100.2:53 or [2001:db8::2]:53)")
	}
	if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
		return fmt.Errorf("has no valid port (0 to 65535)")
	}
	return nil
}

// fqdn checks that s is a domain name and returns it lower-cased and
// fully qualified.
func fqdn(key, s string) (string, error) {
	if s == "" {
		return "", iconfig.Missing(key)
	}
	if _, ok := dns.IsDomainName(s); !ok {
		return "", iconfig.Errorf(key, s, "is not a domain name")
	}
	return strings.ToLower(dns.Fqdn(s)), nil
}

func (z *Zone) validate(keys map[string]bool, dir string) error {
	var err error
	if z.Origin, err = fqdn("origin", z.Origin); err != nil {
		return err
	}
	if z.TTL == 0 {
		z.TTL = DefaultZoneTTL
	}
	z.FileRecords, z.Warnings = nil, nil
	if z.ZoneFile != "" {
		if err := z.applyZoneFile(dir); err != nil {
			return err
		}
	}
	if err := z.SOA.validate(z.Origin); err != nil {
		return iconfig.Join("soa", err)
	}
	if len(z.NS) == 0 {
		return iconfig.Missing("ns")
	}
	for i := range z.NS {
		ns := &z.NS[i]
		key := fmt.Sprintf("ns[%d]", i)
		if ns.Name, err = fqdn(key+".name", relative(ns.Name, z.Origin)); err != nil {
			return err
		}
		inZone := dns.IsSubDomain(z.Origin, ns.Name)
		if inZone && len(ns.Addresses) == 0 {
			return iconfig.Errorf(key+".addresses", "", "are required: %s is inside the zone and needs glue", ns.Name)
		}
		for j, a := range ns.Addresses {
			if _, err := netip.ParseAddr(a); err != nil {
				return iconfig.Errorf(fmt.Sprintf("%s.addresses[%d]", key, j), a, "is not an IP address")
			}
		}
	}
	for i, line := range z.Records {
		key := fmt.Sprintf("records[%d]", i)
		rr, err := ParseRecord(line, z.Origin, z.TTL)
		if err != nil {
			return iconfig.Errorf(key, line, "%v", err)
		}
		if err := z.checkRecord(rr, false); err != nil {
			return iconfig.Errorf(key, line, "%v", err)
		}
	}
	for i := range z.Secondaries {
		sec := &z.Secondaries[i]
		key := fmt.Sprintf("secondaries[%d]", i)
		ap, err := netip.ParseAddrPort(sec.Address)
		if err != nil {
			if a, aerr := netip.ParseAddr(sec.Address); aerr == nil {
				ap = netip.AddrPortFrom(a, 53)
			} else {
				return iconfig.Errorf(key+".address", sec.Address, "is not an IP address with an optional port (like 198.51.100.53 or 198.51.100.53:53)")
			}
		}
		sec.AddrPort = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
		if sec.TSIGKey != "" {
			sec.TSIGKey = strings.ToLower(dns.Fqdn(sec.TSIGKey))
			if !keys[sec.TSIGKey] {
				return iconfig.Errorf(key+".tsig_key", sec.TSIGKey, "is not in tsig_keys")
			}
		}
	}
	names := map[string]int{}
	for i := range z.Services {
		s := &z.Services[i]
		key := fmt.Sprintf("services[%d]", i)
		if err := s.validate(z.Origin); err != nil {
			return iconfig.Join(key, err)
		}
		if j, dup := names[s.Name]; dup {
			return iconfig.Errorf(key+".name", s.Name, "is also services[%d].name", j)
		}
		names[s.Name] = i
		if strings.HasPrefix(s.Name, "*.") {
			return iconfig.Errorf(key+".name", s.Name, "is a wildcard: a service needs a name of its own")
		}
		for j, line := range z.Records {
			rr, _ := ParseRecord(line, z.Origin, z.TTL)
			if strings.EqualFold(rr.Header().Name, s.Name) {
				t := rr.Header().Rrtype
				if t == dns.TypeA || t == dns.TypeAAAA || t == dns.TypeCNAME {
					return iconfig.Errorf(fmt.Sprintf("records[%d]", j), line, "clashes with service %s (a service owns its A and AAAA records)", s.Name)
				}
			}
		}
	}
	z.overrideFileRecords()
	return nil
}

func (s *SOA) validate(origin string) error {
	var err error
	if s.MName, err = fqdn("mname", s.MName); err != nil {
		return err
	}
	if s.RName, err = fqdn("rname", s.RName); err != nil {
		return err
	}
	if s.Refresh == 0 {
		s.Refresh = 3600
	}
	if s.Retry == 0 {
		s.Retry = 600
	}
	if s.Expire == 0 {
		s.Expire = 604800
	}
	if s.Minimum == 0 {
		s.Minimum = 60
	}
	if s.Minimum > 86400 {
		return iconfig.Errorf("minimum", s.Minimum, "is over a day (RFC 2308 suggests 1–3 hours at most)")
	}
	return nil
}

func (s *Service) validate(origin string) error {
	var err error
	if s.Name, err = fqdn("name", relative(s.Name, origin)); err != nil {
		return err
	}
	if !dns.IsSubDomain(origin, s.Name) {
		return iconfig.Errorf("name", s.Name, "is outside the zone %s", origin)
	}
	if s.TTL == 0 {
		s.TTL = DefaultServiceTTL
	}
	if s.DegradedTTL == 0 {
		s.DegradedTTL = s.TTL
	}
	if s.DegradedTTL > s.TTL {
		return iconfig.Errorf("degraded_ttl", s.DegradedTTL, "is longer than ttl (%d): it is meant to shorten caching while targets are down", s.TTL)
	}
	if s.MaxAnswers == 0 {
		s.MaxAnswers = 8
	}
	if s.MaxAnswers < 1 || s.MaxAnswers > 64 {
		return iconfig.Errorf("max_answers", s.MaxAnswers, "must be between 1 and 64")
	}
	switch s.AllDown {
	case "":
		s.AllDown = AllDownAll
	case AllDownAll, AllDownNone:
	default:
		return iconfig.Errorf("all_down", s.AllDown, "is not a policy (want all or none)")
	}
	if len(s.Targets) == 0 {
		return iconfig.Missing("targets")
	}
	s.Addrs = s.Addrs[:0]
	for i, t := range s.Targets {
		a, err := netip.ParseAddr(t)
		if err != nil || a.Zone() != "" {
			return iconfig.Errorf(fmt.Sprintf("targets[%d]", i), t, "is not an IP address")
		}
		a = a.Unmap()
		if slices.Contains(s.Addrs, a) {
			return iconfig.Errorf(fmt.Sprintf("targets[%d]", i), t, "is listed twice")
		}
		s.Addrs = append(s.Addrs, a)
	}
	if err := s.Check.Validate(); err != nil {
		return iconfig.Join("check", err)
	}
	return nil
}

// TSIG algorithms accepted, by config name.
var tsigAlgorithms = map[string]string{
	"hmac-sha256": dns.HmacSHA256,
	"hmac-sha384": dns.HmacSHA384,
	"hmac-sha512": dns.HmacSHA512,
}

// AlgorithmName is the key's algorithm as it appears in TSIG records.
func (k *TSIGKey) AlgorithmName() string { return tsigAlgorithms[k.Algorithm] }

func (k *TSIGKey) validate() error {
	var err error
	if k.Name, err = fqdn("name", k.Name); err != nil {
		return err
	}
	if k.Algorithm == "" {
		k.Algorithm = "hmac-sha256"
	}
	k.Algorithm = strings.ToLower(k.Algorithm)
	if _, ok := tsigAlgorithms[k.Algorithm]; !ok {
		return iconfig.Errorf("algorithm", k.Algorithm, "is not supported (want hmac-sha256, hmac-sha384 or hmac-sha512)")
	}
	if k.SecretFile == "" {
		return iconfig.Missing("secret_file")
	}
	raw, err := iconfig.Secret("secret_file", k.SecretFile)
	if err != nil {
		return err
	}
	k.Secret, err = parseTSIGSecret(string(raw))
	if err != nil {
		return iconfig.Errorf("secret_file", k.SecretFile, "%v", err)
	}
	return nil
}

// parseTSIGSecret takes a bare base64 secret or tsig-keygen's output
// (key "name" { algorithm ...; secret "..."; };) and returns the secret.
func parseTSIGSecret(s string) (string, error) {
	if i := strings.Index(s, "secret"); i >= 0 && strings.Contains(s, "{") {
		rest := s[i+len("secret"):]
		start := strings.IndexByte(rest, '"')
		end := strings.LastIndexByte(rest, '"')
		if start < 0 || end <= start {
			return "", fmt.Errorf("holds a key clause without a quoted secret")
		}
		s = rest[start+1 : end]
	}
	s = strings.TrimSpace(s)
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil || len(b) < 16 {
		return "", fmt.Errorf("does not hold a base64 secret of at least 16 bytes")
	}
	return s, nil
}

// relative completes a name without a final dot with the zone origin,
// as zone files do.
func relative(name, origin string) string {
	if name == "" || name == "@" {
		if name == "@" {
			return origin
		}
		return name
	}
	if dns.IsFqdn(name) {
		return name
	}
	return name + "." + origin
}

// ParseRecord parses one zone-file presentation line, relative names
// completed with origin and a missing TTL set to ttl.
func ParseRecord(line, origin string, ttl uint32) (dns.RR, error) {
	zp := dns.NewZoneParser(strings.NewReader(line), origin, "")
	zp.SetDefaultTTL(ttl)
	rr, ok := zp.Next()
	if err := zp.Err(); err != nil {
		return nil, fmt.Errorf("is not a zone-file record: %w", err)
	}
	if !ok || rr == nil {
		return nil, fmt.Errorf("holds no record")
	}
	if _, more := zp.Next(); more {
		return nil, fmt.Errorf("holds more than one record")
	}
	if rr.Header().Class != dns.ClassINET {
		return nil, fmt.Errorf("is not of class IN")
	}
	rr.Header().Name = strings.ToLower(rr.Header().Name)
	return rr, nil
}

// TargetID is the health-check ID of one service target.
func TargetID(service string, a netip.Addr) string {
	return service + "/" + a.String()
}
