package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"sort"
	"syscall"
	"time"

	"github.com/miekg/dns"
)

// The client load of a drill. `lab load` runs inside the client
// namespace: every tick it resolves www.example.org (ns1, then ns2 if
// ns1 does not answer, as a stub resolver does), then writes or reads a
// post through one of the VIPs in the answer. On SIGTERM it stops, reads
// back every post it was told was stored, and writes a report.

// op is one client operation.
type op struct {
	// At is when a lookup started, and when a request's answer (or
	// error) came: outage() measures from one request's end to the
	// next's.
	At time.Time `json:"at"`
	// Took is how long the operation took.
	Took time.Duration `json:"took"`
	Kind string        `json:"kind"` // dns, write, read
	OK   bool          `json:"ok"`
	// Server is the DNS server that answered a lookup (ns1, ns2).
	Server string `json:"server,omitempty"`
	VIP    string `json:"vip,omitempty"`
	User   string `json:"user,omitempty"`
	Err    string `json:"err,omitempty"`
}

// loadReport is what `lab load` writes.
type loadReport struct {
	Ops         []op           `json:"ops"`
	Acked       int            `json:"acked"` // writes acknowledged with 201
	Lost        []string       `json:"lost"`  // acknowledged posts not found afterwards
	VerifyErr   string         `json:"verify_err,omitempty"`
	DNSByServer map[string]int `json:"dns_by_server"`
}

type loadUser struct {
	Name, Token string
	Acked       []string // post IDs
}

func runLoad(args []string) error {
	fs := flag.NewFlagSet("load", flag.ExitOnError)
	users := fs.Int("users", 4, "users to write as")
	prefix := fs.String("prefix", fmt.Sprintf("load%d", time.Now().Unix()%100000), "user names are PREFIX_0, PREFIX_1, ...")
	interval := fs.Duration("interval", 10*time.Millisecond, "time between operations")
	report := fs.String("report", "", "where to write the report (JSON)")
	ready := fs.String("ready", "", "a file to create once the users exist and the load starts")
	maxRun := fs.Duration("max", 5*time.Minute, "stop after this long even without SIGTERM")
	fs.Parse(args)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, *maxRun)
	defer cancel()

	pool, err := labPool()
	if err != nil {
		return err
	}
	// A new connection, so a new TLS handshake, for every request: a
	// certificate rotation is met by every request after it.
	hc := &http.Client{Timeout: 500 * time.Millisecond, Transport: &http.Transport{DisableKeepAlives: true,
		TLSClientConfig: &tls.Config{RootCAs: pool}}}
	rep := loadReport{DNSByServer: map[string]int{}}
	// Users are made through the first VIP that answers.
	var us []*loadUser
	for i := 0; i < *users; i++ {
		name := fmt.Sprintf("%s_%d", *prefix, i)
		var err error
		for attempt := 0; attempt < 50; attempt++ {
			var vips []string
			if vips, _, err = lookup(); err == nil {
				var u struct{ Token string }
				if err = postJSON(hc, "https://"+vips[0]+"/v1/users", "", map[string]string{"name": name}, &u); err == nil {
					us = append(us, &loadUser{Name: name, Token: u.Token})
					break
				}
			}
			time.Sleep(100 * time.Millisecond)
		}
		if err != nil {
			return fmt.Errorf("creating user %s: %w", name, err)
		}
	}
	if *ready != "" {
		if err := os.WriteFile(*ready, nil, 0o644); err != nil {
			return fmt.Errorf("saying the load is ready: %w", err)
		}
	}
	tick := time.NewTicker(*interval)
	defer tick.Stop()
	for n := 0; ; n++ {
		select {
		case <-ctx.Done():
			return finishLoad(hc, us, &rep, *report)
		case <-tick.C:
		}
		now := time.Now()
		vips, server, err := lookup()
		rep.Ops = append(rep.Ops, op{At: now, Took: time.Since(now), Kind: "dns", OK: err == nil, Server: server, Err: errText(err)})
		if err != nil {
			continue
		}
		rep.DNSByServer[server]++
		// The first address, as most clients use: dnslb rotates them.
		vip := vips[0]
		u := us[n%len(us)]
		sent := time.Now()
		if n%2 == 0 {
			var p struct{ ID string }
			err := postJSON(hc, "https://"+vip+"/v1/users/"+u.Name+"/posts", u.Token, map[string]string{"text": fmt.Sprintf("drill %d", n)}, &p)
			if err == nil {
				u.Acked = append(u.Acked, p.ID)
				rep.Acked++
			}
			rep.Ops = append(rep.Ops, op{At: time.Now(), Took: time.Since(sent), Kind: "write", OK: err == nil, VIP: vip, User: u.Name, Err: errText(err)})
		} else {
			err := getJSON(hc, "https://"+vip+"/v1/users/"+u.Name+"/posts?limit=1", nil)
			rep.Ops = append(rep.Ops, op{At: time.Now(), Took: time.Since(sent), Kind: "read", OK: err == nil, VIP: vip, User: u.Name, Err: errText(err)})
		}
	}
}

// span is when the operation started and ended.
func (o op) span() (start, end time.Time) {
	if o.Kind == "dns" {
		return o.At, o.At.Add(o.Took)
	}
	return o.At.Add(-o.Took), o.At
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// finishLoad reads back every acknowledged post, then writes the report.
func finishLoad(hc *http.Client, us []*loadUser, rep *loadReport, path string) error {
	hc.Timeout = 2 * time.Second
	for _, u := range us {
		found := map[string]bool{}
		var err error
		for attempt := 0; attempt < 20; attempt++ {
			if err = readAll(hc, u.Name, found); err == nil {
				break
			}
			time.Sleep(250 * time.Millisecond)
		}
		if err != nil {
			rep.VerifyErr = fmt.Sprintf("reading back %s: %v", u.Name, err)
		}
		for _, id := range u.Acked {
			if !found[id] {
				rep.Lost = append(rep.Lost, u.Name+"/"+id)
			}
		}
	}
	b, _ := json.Marshal(rep)
	if path == "" {
		_, err := os.Stdout.Write(b)
		return err
	}
	return os.WriteFile(path, b, 0o644)
}

// readAll pages through a user's posts.
func readAll(hc *http.Client, name string, found map[string]bool) error {
	vips, _, err := lookup()
	if err != nil {
		return err
	}
	cursor := ""
	for page := 0; page < 1000; page++ {
		var feed struct {
			Posts []struct{ ID string }
			Next  string
		}
		url := "https://" + vips[0] + "/v1/users/" + name + "/posts?limit=100"
		if cursor != "" {
			url += "&before=" + cursor
		}
		if err := getJSON(hc, url, &feed); err != nil {
			return err
		}
		for _, p := range feed.Posts {
			found[p.ID] = true
		}
		if feed.Next == "" || len(feed.Posts) == 0 {
			return nil
		}
		cursor = feed.Next
	}
	return nil
}

// lookup resolves www.example.org A as a stub resolver would: ns1
// first, ns2 when ns1 does not answer in time.
func lookup() (vips []string, server string, err error) {
	c := &dns.Client{Timeout: 250 * time.Millisecond}
	m := new(dns.Msg)
	m.SetQuestion("www.example.org.", dns.TypeA)
	for _, s := range []string{"ns1", "ns2"} {
		var r *dns.Msg
		r, _, err = c.Exchange(m, hostByName(s).ip+":53")
		if err != nil {
			continue
		}
		for _, rr := range r.Answer {
			if a, ok := rr.(*dns.A); ok {
				vips = append(vips, a.A.String())
			}
		}
		if len(vips) == 0 {
			err = fmt.Errorf("%s answered %s with no address", s, dns.RcodeToString[r.Rcode])
			continue
		}
		return vips, s, nil
	}
	return nil, "", err
}

func postJSON(hc *http.Client, url, token string, body, out any) error {
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	return do(hc, req, out)
}

func getJSON(hc *http.Client, url string, out any) error {
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	return do(hc, req, out)
}

func do(hc *http.Client, req *http.Request, out any) error {
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: %d %s", req.Method, req.URL.Path, resp.StatusCode, bytes.TrimSpace(b))
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(b, out)
}

// outage is the longest stretch in which one user's operations of the
// given kinds failed — from the first failure to that user's next
// success (or the end) — with the failed and total counts. A user whose
// data is unreachable sees an outage even while other users are served.
func outage(ops []op, kinds ...string) (longest time.Duration, failed, total int) {
	byUser := map[string][]op{}
	for _, o := range ops {
		if slices.Contains(kinds, o.Kind) {
			byUser[o.User] = append(byUser[o.User], o)
		}
	}
	for _, sel := range byUser {
		sort.Slice(sel, func(i, j int) bool { return sel[i].At.Before(sel[j].At) })
		var start time.Time
		for _, o := range sel {
			total++
			if !o.OK {
				failed++
				if start.IsZero() {
					start = o.At
				}
				continue
			}
			if !start.IsZero() {
				longest = max(longest, o.At.Sub(start))
				start = time.Time{}
			}
		}
		if !start.IsZero() {
			longest = max(longest, sel[len(sel)-1].At.Sub(start))
		}
	}
	return longest, failed, total
}
