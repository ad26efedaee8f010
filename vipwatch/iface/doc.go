// Package iface is vipwatch's netlink adapter: it adds and removes VIPs
// on one interface, marking each address it adds with a label so that
// vipwatch's addresses can be told from everyone else's (and removed by
// `vipwatch release-all` after a crash), and it watches the link's
// carrier. Linux only.
package iface
