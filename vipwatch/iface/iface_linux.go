package iface

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"syscall"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// LabelSuffix is appended to the interface name to form the label of
// every address vipwatch adds. Linux requires an IPv4 address label to
// start with the device name, and allows 15 bytes in all.
const LabelSuffix = ":vw"

// Label is the label vipwatch gives its addresses on ifname.
func Label(ifname string) (string, error) {
	l := ifname + LabelSuffix
	if len(l) > 15 {
		return "", fmt.Errorf("interface name %q is too long for an address label (at most %d bytes)", ifname, 15-len(LabelSuffix))
	}
	return l, nil
}

// Interface is one network interface. Its methods are safe for
// concurrent use.
type Interface struct {
	name  string
	label string
	index int
	mac   net.HardwareAddr
	// state records the IPv6 addresses vipwatch added, which carry no
	// label (Linux labels IPv4 addresses only).
	state *stateFile
}

// Names lists the machine's interfaces (release-all cleans them all
// when it cannot read the config that names vipwatch's).
func Names() ([]string, error) {
	links, err := netlink.LinkList()
	if err != nil {
		return nil, fmt.Errorf("listing interfaces: %w", err)
	}
	out := make([]string, 0, len(links))
	for _, l := range links {
		out = append(out, l.Attrs().Name)
	}
	return out, nil
}

// Open looks up the interface called name. stateDir (vipwatch's
// runtime directory) holds the record of the IPv6 addresses vipwatch
// adds, so that a later run and release-all recognise them.
func Open(name, stateDir string) (*Interface, error) {
	label, err := Label(name)
	if err != nil {
		return nil, err
	}
	l, err := netlink.LinkByName(name)
	if err != nil {
		return nil, fmt.Errorf("looking up interface %s: %w", name, err)
	}
	return &Interface{name: name, label: label, index: l.Attrs().Index, mac: l.Attrs().HardwareAddr,
		state: newStateFile(stateDir, name)}, nil
}

// Name is the interface's name.
func (i *Interface) Name() string { return i.name }

// MAC is the interface's hardware address.
func (i *Interface) MAC() net.HardwareAddr { return i.mac }

func (i *Interface) addr(p netip.Prefix) *netlink.Addr {
	a := &netlink.Addr{
		IPNet: &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())},
	}
	if p.Addr().Is4() {
		a.Label = i.label
	} else {
		// No duplicate address detection: the address is usable at
		// once on takeover instead of a second or more later, and the
		// partner that held it is gone (or releasing it) by design.
		a.Flags = unix.IFA_F_NODAD
	}
	return a
}

func (i *Interface) link() (netlink.Link, error) {
	l, err := netlink.LinkByIndex(i.index)
	if err != nil {
		return nil, fmt.Errorf("looking up interface %s: %w", i.name, err)
	}
	return l, nil
}

// Add puts p on the interface with vipwatch's label (IPv4), or with
// IFA_F_NODAD and a record in the state file (IPv6). It is idempotent
// (netlink's replace), so it also re-asserts an address someone removed.
func (i *Interface) Add(p netip.Prefix) error {
	l, err := i.link()
	if err != nil {
		return err
	}
	if p.Addr().Is6() {
		// Recorded before it is added: a crash in between leaves a
		// record of an absent address, which Labelled ignores.
		if err := i.state.add(p); err != nil {
			return fmt.Errorf("adding %v to %s: %w", p, i.name, err)
		}
	}
	if err := netlink.AddrReplace(l, i.addr(p)); err != nil {
		return fmt.Errorf("adding %v to %s: %w", p, i.name, err)
	}
	return nil
}

// Delete removes p from the interface. An address that is not there is
// not an error.
func (i *Interface) Delete(p netip.Prefix) error {
	l, err := i.link()
	if err != nil {
		return err
	}
	if err := netlink.AddrDel(l, i.addr(p)); err != nil && !errors.Is(err, syscall.EADDRNOTAVAIL) {
		return fmt.Errorf("removing %v from %s: %w", p, i.name, err)
	}
	if p.Addr().Is6() {
		if err := i.state.remove(p); err != nil {
			return fmt.Errorf("removing %v from %s: %w", p, i.name, err)
		}
	}
	return nil
}

// Labelled lists the addresses on the interface that vipwatch added:
// IPv4 addresses that carry its label, and IPv6 addresses recorded in
// its state file (records of addresses no longer there are dropped).
func (i *Interface) Labelled() ([]netip.Prefix, error) {
	l, err := i.link()
	if err != nil {
		return nil, err
	}
	addrs, err := netlink.AddrList(l, netlink.FAMILY_ALL)
	if err != nil {
		return nil, fmt.Errorf("listing addresses of %s: %w", i.name, err)
	}
	recorded, err := i.state.list()
	if err != nil {
		return nil, fmt.Errorf("listing addresses of %s: %w", i.name, err)
	}
	var out []netip.Prefix
	present := map[netip.Prefix]bool{}
	for _, a := range addrs {
		ip, ok := netip.AddrFromSlice(a.IP)
		if !ok {
			continue
		}
		ones, _ := a.Mask.Size()
		p := netip.PrefixFrom(ip.Unmap(), ones)
		present[p] = true
		if (p.Addr().Is4() && a.Label == i.label) || (p.Addr().Is6() && recorded[p]) {
			out = append(out, p)
		}
	}
	for p := range recorded {
		if !present[p] {
			if err := i.state.remove(p); err != nil {
				return nil, fmt.Errorf("listing addresses of %s: %w", i.name, err)
			}
		}
	}
	return out, nil
}

// DefaultGateways lists the gateways of the IPv4 default routes
// through the interface (in the main table), in the kernel's order.
func (i *Interface) DefaultGateways() ([]netip.Addr, error) {
	routes, err := netlink.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{LinkIndex: i.index}, netlink.RT_FILTER_OIF)
	if err != nil {
		return nil, fmt.Errorf("listing routes of %s: %w", i.name, err)
	}
	var out []netip.Addr
	for _, r := range routes {
		if r.Dst != nil {
			if ones, _ := r.Dst.Mask.Size(); ones != 0 {
				continue
			}
		}
		gw, ok := netip.AddrFromSlice(r.Gw)
		if ok && gw.Unmap().Is4() && !slices.Contains(out, gw.Unmap()) {
			out = append(out, gw.Unmap())
		}
	}
	return out, nil
}

// WatchLink sends the link's state (true: up with carrier) on the
// returned channel: first the current state, then every change, until
// ctx is done. The channel is closed when watching ends.
func (i *Interface) WatchLink(ctx context.Context) (<-chan bool, error) {
	updates := make(chan netlink.LinkUpdate, 16)
	errs := make(chan error, 1)
	if err := netlink.LinkSubscribeWithOptions(updates, ctx.Done(), netlink.LinkSubscribeOptions{
		ListExisting: true,
		ErrorCallback: func(err error) {
			select {
			case errs <- err:
			default:
			}
		},
	}); err != nil {
		return nil, fmt.Errorf("watching link %s: %w", i.name, err)
	}
	out := make(chan bool, 1)
	go func() {
		defer close(out)
		last := -1
		for {
			var u netlink.LinkUpdate
			var ok bool
			select {
			case <-ctx.Done():
				return
			case <-errs:
				return
			case u, ok = <-updates:
				if !ok {
					return
				}
			}
			a := u.Attrs()
			if a.Index != i.index {
				continue
			}
			up := 0
			if IsUp(a) {
				up = 1
			}
			if up == last {
				continue
			}
			last = up
			select {
			case out <- up == 1:
			case <-ctx.Done():
				return
			}
		}
	}()
	return out, nil
}

// IsUp reports whether a link is administratively up and has carrier.
// Links that do not report an operational state (OperUnknown, such as
// loopback and some tunnels) count as up when administratively up.
func IsUp(a *netlink.LinkAttrs) bool {
	if a.Flags&net.FlagUp == 0 {
		return false
	}
	return a.OperState == netlink.OperUp || a.OperState == netlink.OperUnknown
}

// WatchRemoved sends every address removed from the interface (by
// anyone, vipwatch included) on the returned channel until ctx is
// done. The channel is closed when watching ends (ctx done, or the
// netlink subscription failed).
func (i *Interface) WatchRemoved(ctx context.Context) (<-chan netip.Prefix, error) {
	updates := make(chan netlink.AddrUpdate, 64)
	errs := make(chan error, 1)
	if err := netlink.AddrSubscribeWithOptions(updates, ctx.Done(), netlink.AddrSubscribeOptions{
		ErrorCallback: func(err error) {
			select {
			case errs <- err:
			default:
			}
		},
	}); err != nil {
		return nil, fmt.Errorf("watching addresses of %s: %w", i.name, err)
	}
	out := make(chan netip.Prefix, 16)
	go func() {
		defer close(out)
		for {
			var u netlink.AddrUpdate
			var ok bool
			select {
			case <-ctx.Done():
				return
			case <-errs:
				return
			case u, ok = <-updates:
				if !ok {
					return
				}
			}
			if u.NewAddr || u.LinkIndex != i.index {
				continue
			}
			ip, ok := netip.AddrFromSlice(u.LinkAddress.IP)
			if !ok {
				continue
			}
			ones, _ := u.LinkAddress.Mask.Size()
			select {
			case out <- netip.PrefixFrom(ip.Unmap(), ones):
			case <-ctx.Done():
				return
			}
		}
	}()
	return out, nil
}
