//go:build !linux

package iface

import (
	"context"
	"errors"
	"net"
	"net/netip"
)

// errUnsupported is what every operation returns off Linux: vipwatch
// manages addresses through Linux netlink.
var errUnsupported = errors.New("vipwatch manages addresses with Linux netlink; this OS is not supported")

// Interface is one network interface (Linux only).
type Interface struct{}

// Open fails: vipwatch runs on Linux only.
func Open(name, stateDir string) (*Interface, error) { return nil, errUnsupported }

// Names lists the machine's interfaces; unsupported off Linux.
func Names() ([]string, error) { return nil, errUnsupported }

// Name is the interface's name.
func (i *Interface) Name() string { return "" }

// MAC is the interface's hardware address.
func (i *Interface) MAC() net.HardwareAddr { return nil }

// Add fails off Linux.
func (i *Interface) Add(p netip.Prefix) error { return errUnsupported }

// Delete fails off Linux.
func (i *Interface) Delete(p netip.Prefix) error { return errUnsupported }

// Labelled fails off Linux.
func (i *Interface) Labelled() ([]netip.Prefix, error) { return nil, errUnsupported }

// DefaultGateways fails off Linux.
func (i *Interface) DefaultGateways() ([]netip.Addr, error) { return nil, errUnsupported }

// WatchLink fails off Linux.
func (i *Interface) WatchLink(ctx context.Context) (<-chan bool, error) { return nil, errUnsupported }

// WatchRemoved fails off Linux.
func (i *Interface) WatchRemoved(ctx context.Context) (<-chan netip.Prefix, error) {
	return nil, errUnsupported
}
