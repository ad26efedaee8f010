package kv

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestQueue: entries are kept per member in order, listed by member,
// counted, and gone once deleted (the store's hints).
func TestQueue(t *testing.T) {
	db, err := Open(t.TempDir(), Options{Space: func(string) (Space, error) { return Space{Free: 1 << 40}, nil }})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	hints := db.Queue("h/", "hints", true)
	for i, m := range []string{"b:1", "a:1", "b:1", "c:1", "b:1"} {
		if err := hints.Add(m, []byte{byte('0' + i)}); err != nil {
			t.Fatal(err)
		}
	}
	members, err := hints.Members()
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"a:1", "b:1", "c:1"}, members); diff != "" {
		t.Errorf("hinted members (-want +got):\n%s", diff)
	}
	counts, _ := hints.Counts(0)
	if diff := cmp.Diff(map[string]int{"a:1": 1, "b:1": 3, "c:1": 1}, counts); diff != "" {
		t.Errorf("hint counts (-want +got):\n%s", diff)
	}
	// A bounded count reads no more than its limit, oldest members
	// first.
	counts, _ = hints.Counts(2)
	if diff := cmp.Diff(map[string]int{"a:1": 1, "b:1": 1}, counts); diff != "" {
		t.Errorf("hint counts up to 2 (-want +got):\n%s", diff)
	}
	hs, err := hints.Read("b:1", 2)
	if err != nil {
		t.Fatal(err)
	}
	if len(hs) != 2 || string(hs[0].Value) != "0" || string(hs[1].Value) != "2" {
		t.Fatalf("first two hints for b:1 = %q", hs)
	}
	if err := hints.Delete(hs); err != nil {
		t.Fatal(err)
	}
	hs, _ = hints.Read("b:1", 10)
	if len(hs) != 1 || string(hs[0].Value) != "4" {
		t.Errorf("hints for b:1 after delivering two = %q", hs)
	}
}
