package main

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
)

// The lab's hosts and addresses. Everything lives in namespaces named
// rf-*, on 198.51.100.0/24 and 2001:db8::/64 (documentation ranges);
// nothing is added to the machine's own namespace.
// prefix starts every namespace name (flag -prefix): the test suite uses
// its own, so it never touches a lab a person is running.
var prefix = "rf-"

const (
	bridge  = "br0"
	dev     = "eth0"
	gateway = "198.51.100.1" // on the bridge: the LAN's router and witness
)

// host is one machine of the lab.
type host struct {
	name string
	ip   string // IPv4 on the LAN
	ip6  string
	vip  string // home VIP (frontends only)
	pair string // vipwatch partner (frontends only)
}

var hosts = []host{
	{name: "ns1", ip: "198.51.100.2", ip6: "2001:db8::2"},
	{name: "ns2", ip: "198.51.100.3", ip6: "2001:db8::3"},
	{name: "fe1", ip: "198.51.100.11", ip6: "2001:db8::11", vip: "198.51.100.10", pair: "fe2"},
	{name: "fe2", ip: "198.51.100.12", ip6: "2001:db8::12", vip: "198.51.100.20", pair: "fe1"},
	{name: "fe3", ip: "198.51.100.13", ip6: "2001:db8::13", vip: "198.51.100.30", pair: "fe4"},
	{name: "fe4", ip: "198.51.100.14", ip6: "2001:db8::14", vip: "198.51.100.40", pair: "fe3"},
	{name: "client", ip: "198.51.100.100", ip6: "2001:db8::100"},
}

func hostByName(name string) host {
	for _, h := range hosts {
		if h.name == name {
			return h
		}
	}
	panic("lab: no host " + name)
}

func frontends() []host {
	var out []host
	for _, h := range hosts {
		if h.vip != "" {
			out = append(out, h)
		}
	}
	return out
}

func ns(name string) string { return prefix + name }

// lanNS is the namespace with the bridge.
func lanNS() string { return ns("lan") }

// ip runs ip(8) and returns an error carrying its output.
func ip(args ...string) error {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// inNS runs a command in a lab namespace.
func inNS(host string, args ...string) (string, error) {
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns(host)}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s in %s: %v: %s", strings.Join(args, " "), host, err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// namespaces lists the lab's namespaces that exist now.
func namespaces() []string {
	out, _ := exec.Command("ip", "netns", "list").Output()
	var found []string
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) > 0 && strings.HasPrefix(f[0], prefix) {
			found = append(found, f[0])
		}
	}
	return found
}

// buildNetwork creates the LAN namespace with its bridge and one
// namespace per host cabled to it.
func buildNetwork() error {
	if err := ip("netns", "add", lanNS()); err != nil {
		return err
	}
	steps := [][]string{
		{"-n", lanNS(), "link", "set", "lo", "up"},
		{"-n", lanNS(), "link", "add", bridge, "type", "bridge"},
		{"-n", lanNS(), "link", "set", bridge, "up"},
		{"-n", lanNS(), "addr", "add", gateway + "/24", "dev", bridge},
		{"-n", lanNS(), "addr", "add", "2001:db8::1/64", "dev", bridge, "nodad"},
	}
	for _, h := range hosts {
		n := ns(h.name)
		if err := ip("netns", "add", n); err != nil {
			return err
		}
		port := "v-" + h.name
		steps = append(steps,
			[]string{"-n", n, "link", "set", "lo", "up"},
			// Made inside the LAN namespace and moved, so no link ever
			// appears in the machine's own namespace.
			[]string{"-n", lanNS(), "link", "add", port, "type", "veth", "peer", "name", dev, "netns", n},
			[]string{"-n", lanNS(), "link", "set", port, "master", bridge},
			[]string{"-n", lanNS(), "link", "set", port, "up"},
			[]string{"-n", n, "addr", "add", h.ip + "/24", "dev", dev},
			[]string{"-n", n, "addr", "add", h.ip6 + "/64", "dev", dev, "nodad"},
			[]string{"-n", n, "link", "set", dev, "up"},
			[]string{"-n", n, "route", "add", "default", "via", gateway},
		)
	}
	for _, s := range steps {
		if err := ip(s...); err != nil {
			return err
		}
	}
	// The client resolves through ns1 and ns2: ip netns exec bind-mounts
	// /etc/netns/rf-client/resolv.conf over /etc/resolv.conf.
	if err := os.MkdirAll("/etc/netns/"+ns("client"), 0o755); err != nil {
		return err
	}
	return os.WriteFile("/etc/netns/"+ns("client")+"/resolv.conf",
		[]byte("# written by ringfront's lab\nnameserver 198.51.100.2\nnameserver 198.51.100.3\noptions timeout:1 attempts:2 rotate\n"), 0o644)
}

// removeNetwork deletes every lab namespace (their links go with them).
func removeNetwork() error {
	var errs []string
	for _, n := range namespaces() {
		if err := ip("netns", "del", n); err != nil {
			errs = append(errs, err.Error())
		}
	}
	os.RemoveAll("/etc/netns/" + ns("client"))
	if len(errs) > 0 {
		return fmt.Errorf("removing namespaces: %s", strings.Join(errs, "; "))
	}
	return nil
}
