package feed

import (
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestValidName(t *testing.T) {
	for _, tt := range []struct {
		name string
		ok   bool
	}{
		{"joe", true}, {"a", true}, {"user_01", true}, {strings.Repeat("x", 32), true},
		{"", false}, {strings.Repeat("x", 33), false}, {"Joe", false}, {"jo-e", false},
		{"jo e", false}, {"jö", false}, {"../x", false},
	} {
		err := ValidName(tt.name)
		if (err == nil) != tt.ok || (err != nil && !errors.Is(err, ErrBadName)) {
			t.Errorf("ValidName(%q) = %v, want ok=%v", tt.name, err, tt.ok)
		}
	}
}

func TestValidText(t *testing.T) {
	for _, tt := range []struct {
		name, text string
		ok         bool
	}{
		{"short", "hello", true},
		{"280 runes", strings.Repeat("é", 280), true},
		{"281 runes", strings.Repeat("a", 281), false},
		{"empty", "", false},
		{"bad utf8", "a\xffb", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidText(tt.text)
			if (err == nil) != tt.ok || (err != nil && !errors.Is(err, ErrBadText)) {
				t.Errorf("ValidText = %v, want ok=%v", err, tt.ok)
			}
		})
	}
}

func TestIDs(t *testing.T) {
	now := time.Date(2026, 11, 27, 3, 0, 0, 0, time.UTC)
	clock := NewClock(func() time.Time { return now }) // a stuck wall clock
	a, b := NewIDSource(clock, "127.0.0.1:8081"), NewIDSource(clock, "127.0.0.1:8082")
	var (
		mu  sync.Mutex
		ids []ID
		wg  sync.WaitGroup
	)
	for _, src := range []*IDSource{a, b, a, b} {
		wg.Go(func() {
			for range 1000 {
				id := src.Next()
				mu.Lock()
				ids = append(ids, id)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	seen := map[ID]bool{}
	for _, id := range ids {
		if seen[id] {
			t.Fatalf("duplicate id %s", id)
		}
		seen[id] = true
		if got := id.Time(); !got.Equal(now) {
			t.Fatalf("id %s time = %v, want %v", id, got, now)
		}
		back, err := ParseID(id.String())
		if err != nil || back != id {
			t.Fatalf("ParseID(%s) = %v, %v", id, back, err)
		}
	}
	// Text order is byte order.
	strs := make([]string, len(ids))
	slices.SortFunc(ids, ID.Compare)
	for i, id := range ids {
		strs[i] = id.String()
	}
	if !slices.IsSorted(strs) {
		t.Error("text forms do not sort like the ids")
	}
	later := NewIDSource(NewClock(func() time.Time { return now.Add(time.Millisecond) }), "x").Next()
	if later.Compare(ids[len(ids)-1]) <= 0 {
		t.Error("an id from a later millisecond sorts before earlier ones")
	}
	for _, bad := range []string{"", "short", strings.Repeat("0", 25) + "!", strings.Repeat("z", 26), strings.Repeat("0", 25) + "1"} {
		if _, err := ParseID(bad); !errors.Is(err, ErrBadID) {
			t.Errorf("ParseID(%q) = %v, want ErrBadID", bad, err)
		}
	}
}

func TestClockObserve(t *testing.T) {
	c := NewClock(func() time.Time { return time.UnixMilli(1000) })
	first := c.Now()
	c.Observe(first + 500)
	if got := c.Now(); got <= first+500 {
		t.Errorf("Now after Observe = %d, want > %d", got, first+500)
	}
}

func TestMergeEdge(t *testing.T) {
	add := Edge{Follower: "a", Followee: "b", Clock: 5}
	rm := Edge{Follower: "a", Followee: "b", Clock: 7, Removed: true}
	tieRm := Edge{Follower: "a", Followee: "b", Clock: 5, Removed: true}
	for _, tt := range []struct {
		name string
		a, b Edge
		want Edge
	}{
		{"later remove wins", add, rm, rm},
		{"commutative", rm, add, rm},
		{"idempotent", add, add, add},
		{"tie goes to remove", add, tieRm, tieRm},
		{"tie goes to remove, swapped", tieRm, add, tieRm},
	} {
		if got := Merge(tt.a, tt.b); got != tt.want {
			t.Errorf("%s: Merge = %+v, want %+v", tt.name, got, tt.want)
		}
	}
}

func FuzzParseID(f *testing.F) {
	f.Add(NewIDSource(NewClock(nil), "x").Next().String())
	f.Add("")
	f.Add("zzzzzzzzzzzzzzzzzzzzzzzzzz")
	f.Fuzz(func(t *testing.T, s string) {
		id, err := ParseID(s)
		if err != nil {
			if !errors.Is(err, ErrBadID) {
				t.Fatalf("ParseID(%q) = %v, not ErrBadID", s, err)
			}
			return
		}
		if id.String() != s {
			t.Fatalf("ParseID(%q).String() = %q", s, id.String())
		}
	})
}

func FuzzValidate(f *testing.F) {
	f.Add("joe", "hello")
	f.Add("", "")
	f.Add("a_1", strings.Repeat("ü", 281))
	f.Fuzz(func(t *testing.T, name, text string) {
		if err := ValidName(name); err == nil {
			for _, c := range []byte(name) {
				if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
					t.Fatalf("ValidName accepted %q", name)
				}
			}
		}
		if err := ValidText(text); err == nil && (text == "" || len([]rune(text)) > MaxTextLen) {
			t.Fatalf("ValidText accepted %d runes", len([]rune(text)))
		}
	})
}
