package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// render writes a daemon's config for one lab host: the shipped example
// with the host's values as environment overrides, as the daemon's own
// check-config prints it. So the lab runs exactly the examples a
// sysadmin reads, and the rendered file is checked by the daemon.
func (l *lab) render(daemon, example, host string, env []string) (string, error) {
	out := filepath.Join(l.run, host, daemon+".yaml")
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return "", err
	}
	cmd := exec.Command(filepath.Join(l.bin, daemon), "check-config", "-c", filepath.Join(l.configs, example))
	cmd.Env = append(os.Environ(), env...)
	b, err := cmd.Output()
	if err != nil {
		msg := ""
		if ee, ok := err.(*exec.ExitError); ok {
			msg = string(ee.Stderr)
		}
		return "", fmt.Errorf("%s check-config %s for %s: %v %s", daemon, example, host, err, msg)
	}
	if err := os.WriteFile(out, b, 0o644); err != nil {
		return "", err
	}
	// What was written must load as it is.
	if b, err := exec.Command(filepath.Join(l.bin, daemon), "check-config", "-c", out).CombinedOutput(); err != nil {
		return "", fmt.Errorf("rendered %s does not load: %v: %s", out, err, b)
	}
	return out, nil
}

func writeSecret(path string) error {
	if _, err := os.Stat(path); err == nil {
		return nil
	}
	b := make([]byte, 32)
	rand.Read(b)
	return os.WriteFile(path, []byte(base64.StdEncoding.EncodeToString(b)+"\n"), 0o600)
}

// startAll starts dnslb on ns1 and ns2, appnode and vipwatch on every
// frontend.
func (l *lab) startAll() error {
	clusterKey := filepath.Join(l.run, "cluster.key")
	if err := writeSecret(clusterKey); err != nil {
		return err
	}
	if err := l.makeCerts(); err != nil {
		return err
	}
	var members []string
	for _, fe := range frontends() {
		members = append(members, fe.ip+":443")
	}
	for _, fe := range frontends() {
		cert, key := l.certFiles(fe.name)
		cfg, err := l.render("appnode", "appnode.yaml", fe.name, []string{
			"APPNODE_NODE=" + fe.name,
			"APPNODE_LISTEN=0.0.0.0:443",
			"APPNODE_TLS_CERT_FILE=" + cert,
			"APPNODE_TLS_KEY_FILE=" + key,
			"APPNODE_TLS_REDIRECT_LISTEN=0.0.0.0:80",
			"APPNODE_ADVERTISE=" + fe.ip + ":443",
			"APPNODE_MEMBERS=" + strings.Join(members, ","),
			"APPNODE_REPLICAS=2",
			"APPNODE_DATA_DIR=" + filepath.Join(l.run, fe.name, "data"),
			"APPNODE_CLUSTER_SECRET_FILE=" + clusterKey,
			"APPNODE_ADMIN_LISTEN=127.0.0.1:9081",
			// The drills' client load is one address at 100
			// operations a second, over a person's rate limits.
			"APPNODE_LIMITS_EXEMPT=198.51.100.100/32,2001:db8::100/128",
		})
		if err != nil {
			return err
		}
		p, err := startDaemon(l.run, fe.name, "appnode", nil, filepath.Join(l.bin, "appnode"), "serve", "-c", cfg)
		if err != nil {
			return err
		}
		if err := l.record(p); err != nil {
			return err
		}
	}
	for _, fe := range frontends() {
		partner := hostByName(fe.pair)
		pairKey := filepath.Join(l.run, "vipwatch-"+min(fe.name, partner.name)+max(fe.name, partner.name)+".key")
		if err := writeSecret(pairKey); err != nil {
			return err
		}
		cfg, err := l.render("vipwatch", "vipwatch-fe1.yaml", fe.name, []string{
			"VIPWATCH_NODE=" + fe.name,
			"VIPWATCH_PARTNER_NODE=" + partner.name,
			"VIPWATCH_INTERFACE=" + dev,
			"VIPWATCH_BIND=" + fe.ip + ":7201",
			"VIPWATCH_PEER=" + partner.ip + ":7201",
			"VIPWATCH_SECRET_FILE=" + pairKey,
			"VIPWATCH_HOME_VIPS=" + fe.vip + "/24",
			"VIPWATCH_PARTNER_VIPS=" + partner.vip + "/24",
			"VIPWATCH_ADMIN_LISTEN=127.0.0.1:8054",
			// Every frontend runs on this machine's filesystem: each
			// needs its own record of the IPv6 addresses it adds.
			"VIPWATCH_RUNTIME_DIR=" + filepath.Join(l.run, "vipwatch-"+fe.name),
			// Track the local appnode: while it fails, the VIP goes to
			// the partner, whose appnode still answers. Two failed
			// probes 100ms apart: a dead appnode refuses at once, so
			// its VIP moves within about 0.2s.
			"VIPWATCH_TRACK_TYPE=https",
			"VIPWATCH_TRACK_PORT=443",
			"VIPWATCH_TRACK_PATH=/healthz",
			"VIPWATCH_TRACK_INTERVAL=100ms",
			"VIPWATCH_TRACK_TIMEOUT=80ms",
			"VIPWATCH_TRACK_RISE=2",
			"VIPWATCH_TRACK_FALL=2",
		})
		if err != nil {
			return err
		}
		p, err := startDaemon(l.run, fe.name, "vipwatch", trustEnv(), filepath.Join(l.bin, "vipwatch"), "run", "-c", cfg)
		if err != nil {
			return err
		}
		if err := l.record(p); err != nil {
			return err
		}
	}
	for _, name := range []string{"ns1", "ns2"} {
		h := hostByName(name)
		cfg, err := l.render("dnslb", "dnslb.yaml", name, []string{
			"DNSLB_LISTEN=" + h.ip + ":53",
			"DNSLB_ADMIN_LISTEN=127.0.0.1:8053",
		})
		if err != nil {
			return err
		}
		p, err := startDaemon(l.run, name, "dnslb", trustEnv(), filepath.Join(l.bin, "dnslb"), "serve", "-c", cfg)
		if err != nil {
			return err
		}
		if err := l.record(p); err != nil {
			return err
		}
	}
	return nil
}

// vips are the four frontends' home VIPs, sorted.
func vips() []string {
	var out []string
	for _, fe := range frontends() {
		out = append(out, fe.vip)
	}
	slices.Sort(out)
	return out
}

// resolve asks ns (ns1 or ns2) from the client for www.example.org A.
func resolve(server string) []string {
	out, err := inNS("client", "dig", "+short", "+time=1", "+tries=1", "@"+hostByName(server).ip, "www.example.org", "A")
	if err != nil {
		return nil
	}
	ips := strings.Fields(out)
	slices.Sort(ips)
	return ips
}

// waitServing waits until both DNS servers answer with every VIP and a
// user, a post and a read go through a VIP from the client.
func (l *lab) waitServing(ctx context.Context, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	step := func(what string, f func() error) error {
		fmt.Printf("lab: waiting until %s\n", what)
		var err error
		for time.Now().Before(deadline) {
			if err = l.checkProcs(); err != nil {
				return err
			}
			if err = f(); err == nil {
				return nil
			}
			time.Sleep(200 * time.Millisecond)
		}
		return fmt.Errorf("%s: not within %v: %v", what, limit, err)
	}
	if err := step("ns1 and ns2 answer www.example.org with all four VIPs", func() error {
		for _, s := range []string{"ns1", "ns2"} {
			if got := resolve(s); !slices.Equal(got, vips()) {
				return fmt.Errorf("%s answers %v", s, got)
			}
		}
		return nil
	}); err != nil {
		return err
	}
	return step("a post can be written and read through a VIP", func() error {
		return smoke(vips()[0])
	})
}

// checkProcs fails if a daemon the lab started has died.
func (l *lab) checkProcs() error {
	for _, p := range l.procs {
		if !p.alive() {
			log, _ := os.ReadFile(p.Log)
			lines := strings.Split(strings.TrimSpace(string(log)), "\n")
			return fmt.Errorf("%s on %s exited; last log lines:\n  %s", p.Name, p.Host, strings.Join(lines[max(0, len(lines)-5):], "\n  "))
		}
	}
	return nil
}

// curl runs curl in the client namespace and decodes a JSON answer.
func curl(out any, args ...string) error {
	b, err := inNS("client", append([]string{"curl", "-sS", "--max-time", "2", "-f", "--cacert", caFile}, args...)...)
	if err != nil {
		return err
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal([]byte(b), out)
}

// smoke creates a user through vip, posts, and reads the post back.
func smoke(vip string) error {
	name := fmt.Sprintf("lab%d", time.Now().UnixNano()%1_000_000_000)
	var user struct{ Token string }
	if err := curl(&user, "-X", "POST", "-H", "Content-Type: application/json",
		"-d", `{"name":"`+name+`"}`, "https://"+vip+"/v1/users"); err != nil {
		return err
	}
	if err := curl(nil, "-X", "POST", "-H", "Authorization: Bearer "+user.Token, "-H", "Content-Type: application/json",
		"-d", `{"text":"hello from the lab"}`, "https://"+vip+"/v1/users/"+name+"/posts"); err != nil {
		return err
	}
	var feed struct {
		Posts []struct{ Text string }
	}
	if err := curl(&feed, "https://"+vip+"/v1/users/"+name+"/posts"); err != nil {
		return err
	}
	if len(feed.Posts) != 1 || feed.Posts[0].Text != "hello from the lab" {
		return fmt.Errorf("read back %+v", feed.Posts)
	}
	return nil
}

// holders maps each VIP to the frontends that hold it.
func holders() map[string][]string {
	out := map[string][]string{}
	for _, fe := range frontends() {
		b, err := exec.Command("ip", "-n", ns(fe.name), "-4", "-o", "addr", "show", "dev", dev).Output()
		if err != nil {
			continue
		}
		for _, vip := range vips() {
			if strings.Contains(string(b), " "+vip+"/") {
				out[vip] = append(out[vip], fe.name)
			}
		}
	}
	return out
}

// status prints what runs where and what to try.
func (l *lab) status() error {
	ps, err := loadProcs(l.run)
	if err != nil {
		return err
	}
	if len(ps) == 0 {
		return errNotUp
	}
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "\nHOST\tADDRESS\tDAEMON\tPID\tSTATE\tLOG")
	for _, p := range ps {
		state := "running"
		if !p.alive() {
			state = "DEAD"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%d\t%s\t%s\n", p.Host, hostByName(p.Host).ip, p.Name, p.PID, state, p.Log)
	}
	fmt.Fprintln(w, "\nVIP\tHOME\tHELD BY")
	h := holders()
	for _, fe := range frontends() {
		fmt.Fprintf(w, "%s\t%s\t%s\n", fe.vip, fe.name, strings.Join(h[fe.vip], ","))
	}
	w.Flush()
	fmt.Printf("\nwww.example.org: ns1 answers %v, ns2 answers %v\n", resolve("ns1"), resolve("ns2"))
	fmt.Print(`
Try:
  ip netns exec rf-client dig www.example.org             # resolver: ns1, ns2
  ip netns exec rf-client curl -s --cacert lab/run/tls/ca.crt -XPOST -d '{"name":"joe"}' https://www.example.org/v1/users
  ip netns exec rf-ns1 bin/dnslb status                   # health of every VIP
  ip netns exec rf-fe1 bin/vipwatch status                # who holds which VIP
  ip netns exec rf-fe1 bin/appnode status                 # ring and members
  lab/drill kill-frontend                                 # a failover drill
  make lab-down                                           # remove everything
`)
	return nil
}
