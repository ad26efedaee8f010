package iface

import (
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestStateFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run")
	s := newStateFile(dir, "eth0")
	a := netip.MustParsePrefix("2001:db8::10/64")
	b := netip.MustParsePrefix("2001:db8::20/64")
	got, err := s.list()
	if err != nil || len(got) != 0 {
		t.Fatalf("list of a missing file = %v, %v; want empty, nil", got, err)
	}
	for _, p := range []netip.Prefix{a, b, a} {
		if err := s.add(p); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.remove(b); err != nil {
		t.Fatal(err)
	}
	if err := s.remove(b); err != nil { // absent is not an error
		t.Fatal(err)
	}
	// A second run reads what the first wrote.
	got, err = newStateFile(dir, "eth0").list()
	if err != nil {
		t.Fatal(err)
	}
	if !got[a] || len(got) != 1 {
		t.Errorf("record = %v, want only %v", got, a)
	}
	raw, _ := os.ReadFile(StatePath(dir, "eth0"))
	if !strings.Contains(string(raw), "2001:db8::10/64\n") {
		t.Errorf("file = %q", raw)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("runtime dir holds %v, want only the record (no temporary files)", slices.Sorted(slices.Values(names)))
	}
	if err := os.WriteFile(StatePath(dir, "eth0"), []byte("not a prefix\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := s.list(); err == nil || !strings.Contains(err.Error(), "line 1") {
		t.Errorf("corrupt record: err = %v, want one naming line 1", err)
	}
}

// FuzzStateFile reads arbitrary bytes as the address record: it either
// fails with an error or yields prefixes that survive a write and a
// second read unchanged.
func FuzzStateFile(f *testing.F) {
	f.Add([]byte("# comment\n2001:db8::10/64\n\n2001:db8::20/64\n"))
	f.Add([]byte("2001:db8::10/64"))
	f.Add([]byte("not a prefix\n"))
	f.Add([]byte("\xff\x00\n198.51.100.10/24\r\n"))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, b []byte) {
		s := newStateFile(dir, "eth0")
		if err := os.WriteFile(s.path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		set, err := s.list()
		if err != nil {
			return
		}
		if err := s.write(set); err != nil {
			t.Fatal(err)
		}
		again, err := s.list()
		if err != nil {
			t.Fatalf("re-reading a record vipwatch wrote: %v", err)
		}
		if len(again) != len(set) {
			t.Fatalf("record changed on rewrite: %v -> %v", set, again)
		}
		for p := range set {
			if !again[p] {
				t.Fatalf("record lost %v on rewrite", p)
			}
		}
	})
}
