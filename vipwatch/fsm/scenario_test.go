package fsm

import (
	"flag"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite testdata/*.txt with the output the scenarios produce")

// TestScenarios runs the scripts in testdata. A script is a list of
// commands, each followed by "----" and the lines it should log, then a
// blank line. Commands:
//
//	config a|b|both key=value...  hb, dead, preempt, delay, garp, garp-interval, refresh,
//	                              witness (true: a witness and VIP probes), fault-release, probe,
//	                              witness-lag (the daemon's witness rounds notice changes N ticks late)
//	start a|b|both                start the daemon(s); a start first removes stale addresses
//	tick N                        advance N ticks; "!! both hold" is logged if a VIP is on both machines
//	kill a [clean]                SIGKILL; clean runs release-all afterwards (systemd's ExecStopPost)
//	stop a                        graceful stop (SIGTERM)
//	link a down|up                the machine's own link
//	split / heal                  lose every heartbeat both ways, links up (a partition)
//	lose a N                      lose a's heartbeats for the next N ticks
//	jump a N                      a's clock jumps N ticks ahead (the process stalled)
//	delay N                       heartbeats take N ticks
//	handover a [VIP...]           the operator hands a's home VIPs (or those named) to b
//	takeback a                    the operator takes them back
//	track a ok|fail               a's tracked service recovers or fails
//	delete a VIP                  someone deletes VIP from a's interface (a hears of it)
//	cut a / reconnect a           a's cable is cut beyond its port (carrier stays up): a reaches
//	                              neither its partner nor the witness, and its VIPs answer no probe
//	witness down|up [a]           the witness itself goes down or comes back (with a node:
//	                              only that node's path to it)
//	record a on|off               record a's heartbeats as they leave it (an attacker on the LAN)
//	replay a [off]                play the other node's recording to a, one heartbeat a tick,
//	                              from its start; its replay guard drops what it has seen
//	state                         print each machine's state and addresses
func TestScenarios(t *testing.T) {
	files, _ := filepath.Glob("testdata/*.txt")
	if len(files) == 0 {
		t.Fatal("no scenarios in testdata")
	}
	for _, file := range files {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".txt"), func(t *testing.T) {
			runScenario(t, file)
		})
	}
}

func runScenario(t *testing.T, file string) {
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	w := newWorld()
	var out strings.Builder
	lines := strings.Split(string(raw), "\n")
	for i := 0; i < len(lines); i++ {
		line := lines[i]
		if strings.TrimSpace(line) == "" || strings.HasPrefix(line, "#") {
			out.WriteString(line + "\n")
			continue
		}
		cmd := line
		var want []string
		if i+1 < len(lines) && lines[i+1] == "----" {
			i += 2
			for ; i < len(lines) && lines[i] != ""; i++ {
				want = append(want, lines[i])
			}
			i-- // the blank line is written by the loop
		}
		w.log = nil
		if err := w.run(cmd); err != nil {
			t.Fatalf("%s: %q: %v", file, cmd, err)
		}
		got := w.log
		out.WriteString(cmd + "\n----\n")
		for _, l := range got {
			out.WriteString(l + "\n")
		}
		if !*update {
			if diff := cmp.Diff(strings.Join(want, "\n"), strings.Join(got, "\n")); diff != "" {
				t.Errorf("%s: after %q (-want +got):\n%s", file, cmd, diff)
			}
		}
	}
	if *update {
		if err := os.WriteFile(file, []byte(strings.TrimRight(out.String(), "\n")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func (w *world) run(cmd string) error {
	f := strings.Fields(cmd)
	who := func(s string) ([]int, error) {
		switch s {
		case "a":
			return []int{0}, nil
		case "b":
			return []int{1}, nil
		case "both":
			return []int{0, 1}, nil
		}
		return nil, fmt.Errorf("unknown node %q", s)
	}
	num := func(s string) (int64, error) { return strconv.ParseInt(s, 10, 64) }
	if len(f) == 0 {
		return nil
	}
	var nodes []int
	if len(f) > 1 {
		if f[0] != "witness" {
			nodes, _ = who(f[1])
		}
	}
	switch f[0] {
	case "config":
		if len(nodes) == 0 {
			return fmt.Errorf("config needs a node")
		}
		for _, kv := range f[2:] {
			k, v, _ := strings.Cut(kv, "=")
			n, _ := strconv.Atoi(v)
			for _, i := range nodes {
				c := &w.cfg[i]
				switch k {
				case "hb":
					c.HeartbeatTicks = n
				case "dead":
					c.DeadTicks = n
				case "preempt":
					c.Preempt = v == "true"
				case "delay":
					c.PreemptDelayTicks = n
				case "garp":
					c.GARPCount = n
				case "garp-interval":
					c.GARPIntervalTicks = n
				case "refresh":
					c.GARPRefreshTicks = n
				case "witness":
					c.Witness = v == "true"
				case "fault-release":
					c.FaultReleaseTicks = n
				case "probe":
					c.ProbeTicks = n
				case "witness-lag":
					w.nodes[i].witnessLag = int64(n)
				default:
					return fmt.Errorf("unknown config key %q", k)
				}
			}
		}
	case "start":
		for _, i := range nodes {
			w.start(i)
		}
	case "tick":
		n, err := num(f[1])
		if err != nil {
			return err
		}
		last := ""
		for range n {
			w.tick()
			if d := w.doubles(); len(d) > 0 && fmt.Sprint(d) != last {
				w.logf("!! both hold %v", d)
				last = fmt.Sprint(d)
			} else if len(d) == 0 {
				last = ""
			}
		}
	case "kill":
		w.kill(nodes[0], len(f) > 2 && f[2] == "clean")
	case "stop":
		n := w.nodes[nodes[0]]
		if n.m != nil {
			w.apply(nodes[0], n.m.Stop())
			n.m = nil
		}
	case "link":
		w.setLink(nodes[0], f[2] == "up")
	case "cut", "reconnect":
		w.nodes[nodes[0]].cut = f[0] == "cut"
	case "witness":
		if len(f) > 2 {
			i, err := who(f[2])
			if err != nil {
				return err
			}
			w.nodes[i[0]].noWitness = f[1] == "down"
			break
		}
		w.witnessDown = f[1] == "down"
	case "split":
		w.split = true
	case "heal":
		w.split = false
	case "lose":
		n, err := num(f[2])
		if err != nil {
			return err
		}
		w.lose[nodes[0]] = w.now + n
	case "jump":
		n, err := num(f[2])
		if err != nil {
			return err
		}
		i := nodes[0]
		w.apply(i, w.nodes[i].m.Tick(n))
	case "delay":
		n, err := num(f[1])
		if err != nil {
			return err
		}
		w.delay = func() int64 { return n }
	case "handover", "takeback", "track":
		i := nodes[0]
		m := w.nodes[i].m
		if m == nil {
			return fmt.Errorf("%s: %s is not running", f[0], f[1])
		}
		switch f[0] {
		case "handover":
			var vips []netip.Prefix
			for _, v := range f[2:] {
				p, err := netip.ParsePrefix(v)
				if err != nil {
					return err
				}
				vips = append(vips, p)
			}
			w.apply(i, m.Handover(vips))
		case "takeback":
			w.apply(i, m.Takeback())
		case "track":
			w.apply(i, m.Track(f[2] == "ok"))
		}
	case "delete":
		p, err := netip.ParsePrefix(f[2])
		if err != nil {
			return err
		}
		i := nodes[0]
		delete(w.nodes[i].addrs, p)
		if m := w.nodes[i].m; m != nil {
			w.apply(i, m.Removed(p))
		}
	case "record":
		if len(f) < 3 || (f[2] != "on" && f[2] != "off") {
			return fmt.Errorf("record needs a node and on or off")
		}
		w.recording[nodes[0]] = f[2] == "on"
	case "replay":
		i := nodes[0]
		w.replaying[i] = len(f) < 3 || f[2] != "off"
		w.replayAt[i] = 0
		w.replayed[i] = struct{ guard, unproven, acted int }{}
	case "state":
		w.log = append(w.log, w.describe())
	default:
		return fmt.Errorf("unknown command %q", f[0])
	}
	return nil
}
