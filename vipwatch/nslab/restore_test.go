package nslab

import (
	"context"
	"encoding/json"
	"testing"
	"time"
)

// TestRemovedAddressDrill deletes VIP1 from fe1's interface with `ip
// addr del` behind vipwatch's back: fe1 puts it back, fe2 does not take
// it, the client's requests are answered by fe1, and fe1 counts it.
func TestRemovedAddressDrill(t *testing.T) {
	d := newDrill(t, "r")
	d.startPair()
	if _, err := d.lab.Run(context.Background(), d.lab.FE1, "ip", "addr", "del", VIP1.String(), "dev", Dev); err != nil {
		t.Fatal(err)
	}
	err := WaitFor(3*time.Second, "fe1 to put VIP1 back", func() (bool, error) { return d.lab.Holds(d.lab.FE1, VIP1) })
	if err != nil {
		t.Fatal(err)
	}
	d.failedOverTo("fe1")
	cfg, err := d.lab.Config(d.v, "fe1", true)
	if err != nil {
		t.Fatal(err)
	}
	out, err := d.lab.Run(context.Background(), d.lab.FE1, d.v.Binary, "status", "--json", "--config", cfg)
	if err != nil {
		t.Fatal(err)
	}
	var st struct {
		Counters struct {
			AddressesRestored int `json:"addresses_restored"`
			Releases          int `json:"releases"`
		} `json:"counters"`
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("decoding status: %v\n%s", err, out)
	}
	if st.Counters.AddressesRestored != 1 || st.Counters.Releases != 0 {
		t.Errorf("fe1 counters: restored %d releases %d, want 1 and 0", st.Counters.AddressesRestored, st.Counters.Releases)
	}
}
