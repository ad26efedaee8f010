package digest

import (
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ringfront/ringfront/appnode/store/kv"
)

func openDB(t *testing.T, dir string) *kv.DB {
	t.Helper()
	db, err := kv.Open(dir, kv.Options{Space: func(string) (kv.Space, error) { return kv.Space{Free: 1 << 40}, nil }})
	if err != nil {
		t.Fatal(err)
	}
	return db
}

// put writes key = val (replacing old) for owner through the table, as
// the store does.
func put(t *testing.T, db *kv.DB, tab *Table, owner, key, old, val string) {
	t.Helper()
	b := db.NewBatch()
	defer b.Close()
	var o []byte
	if old != "" {
		o = []byte(old)
	}
	delta, err := tab.Put(b, owner, []byte(key), o, []byte(val))
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Apply(b); err != nil {
		t.Fatal(err)
	}
	tab.Committed(owner, delta)
}

// TestTable: a user's digest is the XOR of its records' hashes whatever
// order they were written and replaced in; the leaf table, the per-user
// entries and a reload agree; a table loaded from a database without
// the mark is backfilled from the scan, once.
func TestTable(t *testing.T) {
	dir := t.TempDir()
	db := openDB(t, dir)
	scans := 0
	tab, n, err := Load(db, func() (map[string]Digest, error) { scans++; return nil, nil })
	if err != nil || n != 0 || scans != 1 {
		t.Fatalf("Load of a new database = %d backfilled, %d scans, %v; want 0, 1, nil", n, scans, err)
	}
	put(t, db, tab, "ann", "u/ann", "", "v1")
	put(t, db, tab, "ann", "p/ann/1", "", "post")
	put(t, db, tab, "ann", "u/ann", "v1", "v2") // replaced
	put(t, db, tab, "bob", "u/bob", "", "b")

	want := Record([]byte("p/ann/1"), []byte("post"))
	want.Xor(Record([]byte("u/ann"), []byte("v2")))
	if got, err := tab.User("ann"); err != nil || got != want {
		t.Errorf("User(ann) = %x, %v; want %x", got, err, want)
	}
	if got, _ := tab.User("nobody"); !got.IsZero() {
		t.Errorf("User(nobody) = %x, want zero", got)
	}
	users, err := tab.Users(func(string) bool { return true })
	if err != nil {
		t.Fatal(err)
	}
	wantUsers := map[string]Digest{"ann": want, "bob": Record([]byte("u/bob"), []byte("b"))}
	if diff := cmp.Diff(wantUsers, users); diff != "" {
		t.Errorf("Users (-want +got):\n%s", diff)
	}
	leaves := tab.Leaves()
	var listed []string
	if err := tab.LeafUsers(LeafOf("ann"), func(name string, d Digest) { listed = append(listed, name) }); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(fmt.Sprint(listed), "ann") {
		t.Errorf("LeafUsers(leaf of ann) = %v, want ann among them", listed)
	}
	if err := tab.LeafUsers(NumLeaves, func(string, Digest) {}); err == nil || !strings.Contains(err.Error(), fmt.Sprintf("leaf %d is not from 0 to %d", NumLeaves, NumLeaves-1)) {
		t.Errorf("LeafUsers(NumLeaves) = %v", err)
	}
	if tab.Reads() == 0 {
		t.Error("Reads does not count the entries read")
	}
	db.Close()

	db = openDB(t, dir)
	defer db.Close()
	tab, n, err = Load(db, func() (map[string]Digest, error) { scans++; return nil, nil })
	if err != nil || n != 0 || scans != 1 {
		t.Fatalf("second Load = %d backfilled, %d scans, %v; want no backfill", n, scans, err)
	}
	for i, got := range tab.Leaves() { // a loop, not cmp.Diff: 65536 leaves
		if got != leaves[i] {
			t.Errorf("leaf %d after reload = %x, want %x", i, got, leaves[i])
		}
	}
}
