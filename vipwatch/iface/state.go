package iface

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
)

// DefaultStateDir is vipwatch's runtime directory (systemd's
// RuntimeDirectory=vipwatch).
const DefaultStateDir = "/run/vipwatch"

// stateFile records the IPv6 addresses vipwatch added to one interface,
// one prefix a line, in <dir>/<interface>.addrs. Linux gives address
// labels to IPv4 addresses only, so this record is how a restarted
// daemon and release-all recognise vipwatch's IPv6 addresses. It is
// rewritten whole (write, fsync, rename) on every change. Its methods
// are safe for concurrent use.
type stateFile struct {
	path string
	mu   sync.Mutex // serialises read-modify-write cycles
}

func newStateFile(dir, ifname string) *stateFile {
	if dir == "" {
		dir = DefaultStateDir
	}
	return &stateFile{path: filepath.Join(dir, ifname+".addrs")}
}

// StatePath is the file in which vipwatch records the IPv6 addresses
// it adds to ifname.
func StatePath(dir, ifname string) string { return newStateFile(dir, ifname).path }

func (s *stateFile) read() (map[netip.Prefix]bool, error) {
	b, err := os.ReadFile(s.path)
	if errors.Is(err, fs.ErrNotExist) {
		return map[netip.Prefix]bool{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading vipwatch's address record: %w", err)
	}
	out := map[netip.Prefix]bool{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		p, err := netip.ParsePrefix(line)
		if err != nil {
			return nil, fmt.Errorf("reading vipwatch's address record %s, line %d: %w", s.path, n, err)
		}
		out[p] = true
	}
	return out, nil
}

func (s *stateFile) write(set map[netip.Prefix]bool) error {
	var lines []string
	for p := range set {
		lines = append(lines, p.String())
	}
	slices.Sort(lines)
	body := "# IPv6 addresses vipwatch added; release-all removes them\n" + strings.Join(lines, "\n") + "\n"
	if err := os.MkdirAll(filepath.Dir(s.path), 0o700); err != nil {
		return fmt.Errorf("creating vipwatch's runtime directory: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(s.path), filepath.Base(s.path)+".tmp*")
	if err != nil {
		return fmt.Errorf("writing vipwatch's address record: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.WriteString(body); err != nil {
		tmp.Close()
		return fmt.Errorf("writing vipwatch's address record: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("writing vipwatch's address record: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("writing vipwatch's address record: %w", err)
	}
	if err := os.Rename(tmp.Name(), s.path); err != nil {
		return fmt.Errorf("writing vipwatch's address record: %w", err)
	}
	return nil
}

func (s *stateFile) add(p netip.Prefix) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	set, err := s.read()
	if err != nil || set[p] {
		return err
	}
	set[p] = true
	return s.write(set)
}

func (s *stateFile) remove(p netip.Prefix) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	set, err := s.read()
	if err != nil || !set[p] {
		return err
	}
	delete(set, p)
	return s.write(set)
}

func (s *stateFile) list() (map[netip.Prefix]bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.read()
}
