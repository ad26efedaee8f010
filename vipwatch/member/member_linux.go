package member

import (
	"fmt"
	"log/slog"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/ringfront/ringfront/vipwatch/announce"
	"github.com/ringfront/ringfront/vipwatch/iface"
)

// Open returns a Member on the real interface named in cfg: netlink for
// addresses and the link, a raw socket for gratuitous ARP.
func Open(cfg Config, key []byte, log *slog.Logger) (*Member, error) {
	ifc, err := iface.Open(cfg.Interface)
	if err != nil {
		return nil, err
	}
	ann, err := announce.Dial(cfg.Interface)
	if err != nil {
		return nil, err
	}
	m := newMember(cfg, key, log, ifc, ann, ifc.WatchLink)
	m.removals = ifc.WatchRemoved
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
