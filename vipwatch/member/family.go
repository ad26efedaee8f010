package member

import (
	"errors"
	"net/netip"
	"sync"
	"time"

	"github.com/ringfront/ringfront/vipwatch/probe"
)

// familyAsker asks IPv4 targets with one asker (ARP) and IPv6 targets
// with another (NDP), both at once, and merges what they heard: a
// witness with targets of both families answers when any target does.
type familyAsker struct {
	v4, v6 asker // nil when no target is of that family
}

// Ask implements asker.
func (f familyAsker) Ask(targets []netip.Addr, timeout time.Duration) (probe.Answers, error) {
	var v4, v6 []netip.Addr
	for _, t := range targets {
		if t.Is4() {
			v4 = append(v4, t)
		} else {
			v6 = append(v6, t)
		}
	}
	var (
		mu   sync.Mutex
		out  = probe.Answers{}
		errs []error
		wg   sync.WaitGroup
	)
	for _, fam := range []struct {
		ask     asker
		targets []netip.Addr
		name    string
	}{{f.v4, v4, "IPv4"}, {f.v6, v6, "IPv6"}} {
		if len(fam.targets) == 0 {
			continue
		}
		if fam.ask == nil {
			errs = append(errs, errors.New("no prober for "+fam.name+" witness targets"))
			continue
		}
		wg.Go(func() {
			ans, err := fam.ask.Ask(fam.targets, timeout)
			mu.Lock()
			defer mu.Unlock()
			for a, hw := range ans {
				out[a] = hw
			}
			if err != nil {
				errs = append(errs, err)
			}
		})
	}
	wg.Wait()
	return out, errors.Join(errs...)
}
