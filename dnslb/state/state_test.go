package state

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func id(service, address string) (string, error) {
	if service == "" || address == "" {
		return "", fmt.Errorf("service and address are required")
	}
	return service + "/" + address, nil
}

func TestSaveLoad(t *testing.T) {
	dir := t.TempDir()
	f := Open(dir)
	since := time.Date(2026, 12, 6, 8, 0, 0, 0, time.UTC)
	want := map[string]Drain{
		"www.example.org./198.51.100.10": {Service: "www.example.org.", Address: "198.51.100.10", By: "alice@ops1 (127.0.0.1)", Since: since, Reason: "kernel upgrade"},
		"www.example.org./2001:db8::10":  {Service: "www.example.org.", Address: "2001:db8::10", By: "127.0.0.1", Since: since},
	}
	if err := f.Save(want); err != nil {
		t.Fatal(err)
	}
	got, err := Open(dir).Load(id)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got)\n%s", diff)
	}
	// Saving nothing leaves an empty list, and no temporary files.
	if err := f.Save(map[string]Drain{}); err != nil {
		t.Fatal(err)
	}
	if got, err := f.Load(id); err != nil || len(got) != 0 {
		t.Errorf("after clearing: %v, %v", got, err)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 || ents[0].Name() != FileName {
		t.Errorf("state directory holds %v", ents)
	}
}

func TestLoadMissingIsEmpty(t *testing.T) {
	got, err := Open(t.TempDir()).Load(id)
	if err != nil || len(got) != 0 {
		t.Errorf("Load = %v, %v", got, err)
	}
	got, err = Open("").Load(id)
	if err != nil || len(got) != 0 {
		t.Errorf("no state directory: Load = %v, %v", got, err)
	}
}

func TestLoadRefusesCorruptFiles(t *testing.T) {
	tests := []struct{ name, body, want string }{
		{"truncated", `{"version": 1, "drains": [{"service": "www.example.org.",`, "is corrupt: unexpected EOF"},
		{"not json", "drained: www\n", "is corrupt: invalid character"},
		{"unknown key", `{"version": 1, "drains": [], "color": "blue"}`, `is corrupt: json: unknown field "color"`},
		{"other version", `{"version": 2, "drains": []}`, "is corrupt: version 2, want 1"},
		{"bad drain", `{"version": 1, "drains": [{"service": "www.example.org."}]}`, "is corrupt: drains[0]: service and address are required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			os.WriteFile(filepath.Join(dir, FileName), []byte(tt.body), 0o600)
			_, err := Open(dir).Load(id)
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "move it away") {
				t.Errorf("error = %v, want %q and what to do", err, tt.want)
			}
		})
	}
}

func TestLoadRefusesUnreadableFile(t *testing.T) {
	dir := t.TempDir()
	// A directory where the file should be: unreadable as a file, even
	// for root.
	os.Mkdir(filepath.Join(dir, FileName), 0o700)
	_, err := Open(dir).Load(id)
	if err == nil || !strings.Contains(err.Error(), "reading the admin state file") {
		t.Errorf("error = %v", err)
	}
}
