//go:build !linux

package member

import (
	"errors"
	"log/slog"
)

var errUnsupported = errors.New("vipwatch runs on Linux only (netlink, raw ARP sockets)")

// Open fails: vipwatch runs on Linux only.
func Open(cfg Config, key []byte, log *slog.Logger) (*Member, error) { return nil, errUnsupported }

// CheckPrivileges fails: vipwatch runs on Linux only.
func CheckPrivileges() error { return errUnsupported }
