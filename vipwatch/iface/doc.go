// Package iface is vipwatch's netlink adapter: it adds and removes VIPs
// on one interface and watches the link's carrier and its addresses.
// It marks each address it adds so that vipwatch's addresses can be
// told from everyone else's (and removed by `vipwatch release-all`
// after a crash): IPv4 addresses with a label, and IPv6 addresses —
// which Linux does not label, and which it adds with IFA_F_NODAD — with
// a record in a state file in vipwatch's runtime directory. Linux only.
package iface
