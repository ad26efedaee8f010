// Package state keeps dnslb's admin overrides (drains) in a file in the
// state directory, so they survive a restart: written whole and
// atomically on every change, read once at start before the first
// answer. A file that cannot be read or parsed is an error, never a
// silent reset. A File is safe for concurrent use.
package state

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"
)

// FileName is the state file's name in the state directory.
const FileName = "admin-state.json"

// version is the file format's version; a file of another version is
// refused rather than misread.
const version = 1

// Drain is one target taken out of the answers by an operator.
type Drain struct {
	Service string    `json:"service"` // fully qualified, lower case
	Address string    `json:"address"`
	By      string    `json:"by"` // who asked, as the admin API saw it
	Since   time.Time `json:"since"`
	Reason  string    `json:"reason,omitempty"`
}

// document is the file's content.
type document struct {
	Version int     `json:"version"`
	Drains  []Drain `json:"drains"`
}

// File is the state file in one directory.
type File struct {
	path string
	mu   sync.Mutex // serialises writes
}

// Open returns the state file in dir. An empty dir means no state file:
// Load returns nothing and Save does nothing.
func Open(dir string) *File {
	if dir == "" {
		return &File{}
	}
	return &File{path: filepath.Join(dir, FileName)}
}

// Path is the file's path, empty if there is none.
func (f *File) Path() string { return f.path }

// Load reads the drains, keyed by id(service, address). A missing file
// holds none; a file that cannot be read or parsed is an error that says
// what to do.
func (f *File) Load(id func(service, address string) (string, error)) (map[string]Drain, error) {
	out := map[string]Drain{}
	if f.path == "" {
		return out, nil
	}
	b, err := os.ReadFile(f.path)
	if errors.Is(err, fs.ErrNotExist) {
		return out, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading the admin state file %s: %w (make it readable by dnslb, or move it away to start without the drains it holds)", f.path, err)
	}
	var doc document
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&doc); err != nil {
		return nil, f.corrupt(err)
	}
	if doc.Version != version {
		return nil, f.corrupt(fmt.Errorf("version %d, want %d", doc.Version, version))
	}
	for i, d := range doc.Drains {
		key, err := id(d.Service, d.Address)
		if err != nil {
			return nil, f.corrupt(fmt.Errorf("drains[%d]: %w", i, err))
		}
		out[key] = d
	}
	return out, nil
}

func (f *File) corrupt(err error) error {
	return fmt.Errorf("the admin state file %s is corrupt: %v; it holds the drains made with `dnslb drain`: repair it, or move it away and drain again what should stay drained", f.path, err)
}

// Save replaces the file's content with drains: it writes a new file
// beside it, syncs it, renames it over the old one and syncs the
// directory, so a crash leaves either the old state or the new one.
func (f *File) Save(drains map[string]Drain) error {
	if f.path == "" {
		return nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	doc := document{Version: version, Drains: []Drain{}}
	for _, k := range slices.Sorted(maps.Keys(drains)) {
		doc.Drains = append(doc.Drains, drains[k])
	}
	body, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding the admin state: %w", err)
	}
	body = append(body, '\n')
	dir := filepath.Dir(f.path)
	tmp, err := os.CreateTemp(dir, "."+FileName+".*")
	if err != nil {
		return fmt.Errorf("writing the admin state file in %s: %w", dir, err)
	}
	defer os.Remove(tmp.Name()) // after the rename, there is nothing to remove
	_, err = tmp.Write(body)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), f.path)
	}
	if err != nil {
		return fmt.Errorf("writing the admin state file %s: %w", f.path, err)
	}
	if d, err := os.Open(dir); err == nil {
		err = d.Sync() // the rename itself survives a crash
		d.Close()
		if err != nil {
			return fmt.Errorf("syncing the state directory %s: %w", dir, err)
		}
	}
	return nil
}
