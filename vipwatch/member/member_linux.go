package member

import (
	"fmt"
	"log/slog"
	"slices"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/ringfront/ringfront/vipwatch/announce"
	"github.com/ringfront/ringfront/vipwatch/iface"
	"github.com/ringfront/ringfront/vipwatch/probe"
)

// Open returns a Member on the real interface named in cfg: netlink for
// addresses and the link, a raw socket for gratuitous ARP.
func Open(cfg Config, key []byte, log *slog.Logger) (*Member, error) {
	ifc, err := iface.Open(cfg.Interface, cfg.RuntimeDir)
	if err != nil {
		return nil, err
	}
	var v4, v6 bool
	for _, p := range slices.Concat(cfg.HomeVIPs, cfg.PartnerVIPs) {
		v4, v6 = v4 || p.Addr().Is4(), v6 || p.Addr().Is6()
	}
	var ann announce.Mux
	if v4 {
		if ann.V4, err = announce.Dial(cfg.Interface); err != nil {
			return nil, err
		}
	}
	if v6 {
		if ann.V6, err = announce.DialNDP(cfg.Interface); err != nil {
			return nil, err
		}
	}
	m := newMember(cfg, key, log, ifc, ann, ifc.WatchLink)
	m.removals = ifc.WatchRemoved
	if w := cfg.Witness; w != nil {
		if len(w.Targets) == 0 {
			gws, err := ifc.DefaultGateways()
			if err != nil {
				return nil, fmt.Errorf("finding a witness: %w", err)
			}
			if len(gws) == 0 {
				return nil, fmt.Errorf("witness.targets is empty and %s has no IPv4 default gateway to take as the witness; name the targets", cfg.Interface)
			}
			log.Info("witness: the interface's default gateway", "op", "witness", "interface", cfg.Interface, "targets", gws)
			m.witnessTargets = gws
		}
		switch w.Method {
		case WitnessICMP:
			p, unprivileged, err := probe.DialICMP(cfg.Interface)
			if err != nil {
				return nil, fmt.Errorf("opening the witness prober: %w", err)
			}
			if unprivileged {
				log.Warn("no CAP_NET_RAW: pinging witnesses on an unprivileged socket that is not bound to the interface", "op", "witness", "interface", cfg.Interface)
			}
			m.witnessAsk = p
		default:
			// ARP for IPv4 targets, NDP for IPv6 ones.
			var fa familyAsker
			for _, t := range m.witnessTargets {
				switch {
				case t.Is4() && fa.v4 == nil:
					if fa.v4, err = probe.DialARP(cfg.Interface); err != nil {
						return nil, fmt.Errorf("opening the witness prober: %w", err)
					}
				case t.Is6() && fa.v6 == nil:
					if fa.v6, err = probe.DialNDP(cfg.Interface); err != nil {
						return nil, fmt.Errorf("opening the witness prober: %w", err)
					}
				}
			}
			m.witnessAsk = fa
		}
		// VIP probes get sockets of their own: a witness round and a
		// VIP probe may run at once, and each reads its own answers.
		if v4 {
			if m.vipAsk4, err = probe.DialARP(cfg.Interface); err != nil {
				return nil, fmt.Errorf("opening the VIP prober: %w", err)
			}
		}
		if v6 {
			if m.vipAsk6, err = probe.DialNDP(cfg.Interface); err != nil {
				return nil, fmt.Errorf("opening the VIP prober: %w", err)
			}
		}
	}
	return m, nil
}

// CheckPrivileges reports which of the capabilities vipwatch needs
// (CAP_NET_ADMIN for addresses, CAP_NET_RAW for ARP) the process lacks.
func CheckPrivileges() error {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return fmt.Errorf("reading process capabilities: %w", err)
	}
	var missing []string
	for _, c := range []struct {
		bit  uint
		name string
	}{{unix.CAP_NET_ADMIN, "CAP_NET_ADMIN"}, {unix.CAP_NET_RAW, "CAP_NET_RAW"}} {
		if data[c.bit/32].Effective&(1<<(c.bit%32)) == 0 {
			missing = append(missing, c.name)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("missing %s, which vipwatch needs to manage addresses and send ARP; run it as root or grant them (systemd: AmbientCapabilities=CAP_NET_ADMIN CAP_NET_RAW)", strings.Join(missing, " and "))
	}
	return nil
}
