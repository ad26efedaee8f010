package config

import (
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	"github.com/miekg/dns"

	iconfig "github.com/ringfront/ringfront/internal/config"
)

// Load reads, completes and validates the configuration as
// iconfig.Load does, with the config file's directory known: zone files
// and their $INCLUDEs are read from there.
func Load(opts iconfig.Options) (*Config, error) {
	c := &Config{}
	if opts.File != "" {
		abs, err := filepath.Abs(opts.File)
		if err != nil {
			return nil, fmt.Errorf("reading config: %w", err)
		}
		c.Dir = filepath.Dir(abs)
	}
	if err := iconfig.Load(opts, c); err != nil {
		return nil, err
	}
	return c, nil
}

// readZoneFile parses the zone's zone_file, an RFC 1035 master file
// inside dir (the config directory), as miekg/dns's ZoneParser does:
// $ORIGIN, $TTL, $INCLUDE (of files inside dir only), relative names and
// multi-line records. The zone's origin and ttl are the defaults. It
// checks each record as records: lines are checked, and takes the SOA
// and the apex NS records out: they are returned apart.
func (z *Zone) readZoneFile(dir string) (soa *dns.SOA, apexNS []*dns.NS, rrs []dns.RR, err error) {
	if dir == "" {
		dir = "."
	}
	fail := func(format string, args ...any) error {
		return iconfig.Errorf("zone_file", z.ZoneFile, format, args...)
	}
	rel := z.ZoneFile
	if filepath.IsAbs(rel) {
		absDir, err := filepath.Abs(dir)
		if err != nil {
			return nil, nil, nil, fail("%v", err)
		}
		if rel, err = filepath.Rel(absDir, z.ZoneFile); err != nil {
			return nil, nil, nil, fail("%v", err)
		}
	}
	rel = filepath.ToSlash(filepath.Clean(rel))
	if !fs.ValidPath(rel) {
		return nil, nil, nil, fail("is outside the config directory %s (zone files and their $INCLUDEs must be inside it)", dir)
	}
	// os.Root keeps every open, $INCLUDE's and symbolic links' too,
	// inside the config directory.
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, nil, nil, fail("opening the config directory: %v", err)
	}
	defer root.Close()
	f, err := root.Open(rel)
	if err != nil {
		return nil, nil, nil, fail("cannot be read: %v", err)
	}
	defer f.Close()
	zp := dns.NewZoneParser(f, z.Origin, rel)
	zp.SetDefaultTTL(z.TTL)
	zp.SetIncludeAllowed(true)
	zp.SetIncludeFS(confined{root.FS(), dir})
	for rr, ok := zp.Next(); ok; rr, ok = zp.Next() {
		h := rr.Header()
		h.Name = strings.ToLower(h.Name)
		if err := z.checkRecord(rr, true); err != nil {
			return nil, nil, nil, fail("holds %q, which %v", rrText(rr), err)
		}
		switch r := rr.(type) {
		case *dns.SOA:
			if soa != nil {
				return nil, nil, nil, fail("holds a second SOA record %q", rrText(rr))
			}
			soa = r
			continue
		case *dns.NS:
			if h.Name == z.Origin {
				apexNS = append(apexNS, r)
				continue
			}
		}
		rrs = append(rrs, rr)
	}
	if err := zp.Err(); err != nil {
		var pe *dns.ParseError
		if errors.As(err, &pe) {
			// file: dns: what: "token" at line: L:C
			return nil, nil, nil, fail("is not a valid zone file: %v", err)
		}
		return nil, nil, nil, fail("cannot be read: %v", err)
	}
	return soa, apexNS, rrs, nil
}

// confined is the config directory as an fs.FS for $INCLUDE, saying
// plainly when an include reaches outside it.
type confined struct {
	fs.FS
	dir string
}

func (c confined) Open(name string) (fs.File, error) {
	if !fs.ValidPath(name) {
		return nil, fmt.Errorf("%s is outside the config directory %s", name, c.dir)
	}
	return c.FS.Open(name)
}

// checkRecord says what is wrong with a static record of the zone, or
// nil. SOA and apex NS records are allowed only in a zone file (inFile).
func (z *Zone) checkRecord(rr dns.RR, inFile bool) error {
	h := rr.Header()
	if h.Class != dns.ClassINET {
		return fmt.Errorf("is not of class IN")
	}
	if !dns.IsSubDomain(z.Origin, h.Name) {
		return fmt.Errorf("is outside the zone %s", z.Origin)
	}
	switch h.Rrtype {
	case dns.TypeSOA:
		if !inFile {
			return fmt.Errorf("is an SOA record: set the zone's soa section instead")
		}
		if h.Name != z.Origin {
			return fmt.Errorf("is an SOA record below the apex")
		}
	case dns.TypeDNAME, dns.TypeRRSIG, dns.TypeNSEC, dns.TypeNSEC3, dns.TypeNSEC3PARAM, dns.TypeDNSKEY:
		return fmt.Errorf("is a %s record, which dnslb does not serve", dns.TypeToString[h.Rrtype])
	case dns.TypeNS:
		if !inFile && h.Name == z.Origin {
			return fmt.Errorf("is an apex NS record: list name servers in the zone's ns section")
		}
	}
	return nil
}

// applyZoneFile reads the zone file and merges it into the zone: the
// file's SOA when the soa section is empty, its apex NS records (with
// their glue from the file) when the ns section is empty, and the rest
// as static records beside records:.
func (z *Zone) applyZoneFile(dir string) error {
	soa, apexNS, rrs, err := z.readZoneFile(dir)
	if err != nil {
		return err
	}
	if soa != nil {
		if z.SOA.MName != "" || z.SOA.RName != "" {
			return iconfig.Errorf("soa", z.SOA.MName, "is set both here and by the SOA record in zone_file %s: keep one", z.ZoneFile)
		}
		z.SOA = SOA{MName: soa.Ns, RName: soa.Mbox, Serial: soa.Serial, Refresh: soa.Refresh, Retry: soa.Retry, Expire: soa.Expire, Minimum: soa.Minttl}
	}
	if len(apexNS) > 0 {
		if len(z.NS) > 0 {
			return iconfig.Errorf("ns", z.NS[0].Name, "is set both here and by apex NS records in zone_file %s: keep one", z.ZoneFile)
		}
		for _, ns := range apexNS {
			name := strings.ToLower(ns.Ns)
			entry := NS{Name: name}
			for _, rr := range rrs {
				if !strings.EqualFold(rr.Header().Name, name) {
					continue
				}
				var a netip.Addr
				switch r := rr.(type) {
				case *dns.A:
					a, _ = netip.AddrFromSlice(r.A.To4())
				case *dns.AAAA:
					a, _ = netip.AddrFromSlice(r.AAAA)
				default:
					continue
				}
				entry.Addresses = append(entry.Addresses, a.String())
			}
			z.NS = append(z.NS, entry)
		}
	}
	z.FileRecords = rrs
	return nil
}

// overrideFileRecords drops the zone file's records that a service
// owns (its name's A, AAAA and CNAME records) and says so in Warnings.
func (z *Zone) overrideFileRecords() {
	kept := z.FileRecords[:0]
	for _, rr := range z.FileRecords {
		h := rr.Header()
		owner := ""
		if h.Rrtype == dns.TypeA || h.Rrtype == dns.TypeAAAA || h.Rrtype == dns.TypeCNAME {
			for i := range z.Services {
				if z.Services[i].Name == h.Name {
					owner = fmt.Sprintf("services[%d] (%s)", i, z.Services[i].Name)
				}
			}
		}
		if owner == "" {
			kept = append(kept, rr)
			continue
		}
		z.Warnings = append(z.Warnings, fmt.Sprintf("%s overrides %q from zone_file %s", owner, rrText(rr), z.ZoneFile))
	}
	z.FileRecords = kept
}

// rrText is a record in presentation form with spaces for tabs, for
// messages.
func rrText(rr dns.RR) string { return strings.ReplaceAll(rr.String(), "\t", " ") }
