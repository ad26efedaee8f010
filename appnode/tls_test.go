package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ringfront/ringfront/appnode/client"
	"github.com/ringfront/ringfront/appnode/proxy"
	"github.com/ringfront/ringfront/internal/certs"
)

// tlsCluster is a daemon cluster serving its API over HTTPS with
// certificates from ca, member i's in certFile(i) and keyFile(i).
type tlsCluster struct {
	*daemonCluster
	ca    *certs.Authority
	caPEM string // file
	dir   string
}

func (c *tlsCluster) certFile(i int) string { return filepath.Join(c.dir, fmt.Sprintf("api%d.crt", i)) }
func (c *tlsCluster) keyFile(i int) string  { return filepath.Join(c.dir, fmt.Sprintf("api%d.key", i)) }

// issue gives member i a new certificate valid for valid (negative:
// one that expired).
func (c *tlsCluster) issue(t *testing.T, i int, valid time.Duration) {
	t.Helper()
	if valid < 0 {
		now := time.Now()
		cp, kp, err := c.ca.Issue([]string{"127.0.0.1", "localhost"}, now.Add(-2*time.Hour), now.Add(valid))
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(c.certFile(i), cp, 0o644)
		os.WriteFile(c.keyFile(i), kp, 0o600)
		return
	}
	if err := c.ca.IssueFiles([]string{"127.0.0.1", "localhost"}, valid, c.certFile(i), c.keyFile(i)); err != nil {
		t.Fatal(err)
	}
}

func startTLSCluster(t *testing.T, n int) *tlsCluster {
	t.Helper()
	ca, err := certs.NewAuthority("appnode test CA")
	if err != nil {
		t.Fatal(err)
	}
	c := &tlsCluster{ca: ca, dir: t.TempDir()}
	c.caPEM = filepath.Join(c.dir, "ca.crt")
	os.WriteFile(c.caPEM, ca.CertPEM(), 0o644)
	for i := range n {
		c.issue(t, i, time.Hour)
	}
	c.daemonCluster = startDaemons(t, n, func(i int) string {
		return fmt.Sprintf("tls: {cert_file: %q, key_file: %q}\n", c.certFile(i), c.keyFile(i))
	})
	return c
}

// httpsClient speaks HTTPS only, trusting the cluster's CA; with fresh,
// every request makes a new connection (a new handshake).
func (c *tlsCluster) httpsClient(fresh bool) *http.Client {
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: c.ca.Pool()}, ForceAttemptHTTP2: true, DisableKeepAlives: fresh}
	return &http.Client{Transport: tr, Timeout: 5 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// call makes one HTTPS request and decodes its JSON answer into out
// (nil: discarded); an answer other than want is an error.
func call(hc *http.Client, method, url, token, body string, want int, out any) error {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		return err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		return fmt.Errorf("%s %s: %s %s", method, url, resp.Status, b)
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}

// TestTLSEveryAPI: a client that speaks only HTTPS uses every API
// through every member (each forwards to the owner over member TLS), the
// live stream included, and so does the Go client with a CA file; plain
// HTTP to the API is refused with a clear answer.
func TestTLSEveryAPI(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three appnode daemons")
	}
	c := startTLSCluster(t, 3)
	hc := c.httpsClient(false)
	url := func(i int, path string) string { return "https://" + c.members[i%len(c.members)] + path }
	type user struct{ Name, Token string }
	var users []user
	for i := range 3 {
		var u user
		if err := call(hc, "POST", url(i, "/v1/users"), "", fmt.Sprintf(`{"name":"tls%d"}`, i), http.StatusCreated, &u); err != nil {
			t.Fatal(err)
		}
		users = append(users, u)
	}
	a, b := users[0], users[1]

	// a follows b, streams its home timeline through member 2, and b
	// posts through each member.
	for i := range 3 {
		if err := call(hc, "PUT", url(i, "/v1/users/"+a.Name+"/following/"+b.Name), a.Token, "", http.StatusNoContent, nil); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	sreq, _ := http.NewRequestWithContext(ctx, "GET", url(2, "/v1/users/"+a.Name+"/timeline/stream"), nil)
	sreq.Header.Set("Authorization", "Bearer "+a.Token)
	sresp, err := hc.Do(sreq)
	if err != nil || sresp.StatusCode != 200 {
		t.Fatalf("stream over HTTPS: %v %v", sresp, err)
	}
	defer sresp.Body.Close()
	if sresp.ProtoMajor != 2 {
		t.Errorf("stream over HTTP/%d, want HTTP/2", sresp.ProtoMajor)
	}
	events := make(chan string, 16)
	go func() {
		sc := bufio.NewScanner(sresp.Body)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "data: ") {
				events <- sc.Text()
			}
		}
	}()
	for i := range 3 {
		if err := call(hc, "POST", url(i, "/v1/users/"+b.Name+"/posts"), b.Token, fmt.Sprintf(`{"text":"secret post %d"}`, i), http.StatusCreated, nil); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 3 {
		select {
		case ev := <-events:
			if !strings.Contains(ev, "secret post") {
				t.Errorf("stream event %q", ev)
			}
		case <-ctx.Done():
			t.Fatalf("the stream over HTTPS delivered %d of 3 posts", i)
		}
	}

	for i := range 3 {
		for _, path := range []string{
			"/v1/users/" + b.Name, "/v1/users/" + b.Name + "/posts", "/v1/users/" + a.Name + "/following",
			"/v1/users/" + b.Name + "/followers", "/v1/users/" + a.Name + "/timeline",
		} {
			if err := call(hc, "GET", url(i, path), a.Token, "", http.StatusOK, nil); err != nil {
				t.Error(err)
			}
		}
		for _, path := range []string{"/v1/ring", "/v1/ring/lookup?key=" + a.Name, "/healthz", "/", "/web/app.js"} {
			if err := call(hc, "GET", url(i, path), "", "", http.StatusOK, nil); err != nil {
				t.Error(err)
			}
		}
	}
	var tl struct{ Posts []struct{ Text string } }
	if err := call(hc, "GET", url(1, "/v1/users/"+a.Name+"/timeline"), a.Token, "", http.StatusOK, &tl); err != nil || len(tl.Posts) != 3 {
		t.Errorf("timeline over HTTPS = %+v, %v; want 3 posts", tl, err)
	}
	if err := call(hc, "DELETE", url(2, "/v1/users/"+a.Name+"/following/"+b.Name), a.Token, "", http.StatusNoContent, nil); err != nil {
		t.Error(err)
	}

	// The Go client, seeded with https:// and the CA file.
	cl, err := client.New([]string{"https://" + c.members[0]}, client.Options{CAFile: c.caPEM})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cl.CreateUser(ctx, "tlsclient"); err != nil {
		t.Errorf("client over HTTPS: %v", err)
	}

	// The command line, and appnode proxy in front of the cluster.
	out, err := run(t, "user", "--server", "https://"+c.members[1], "--ca-file", c.caPEM, "feed", b.Name)
	if err != nil || !strings.Contains(out, "secret post 2") {
		t.Errorf("appnode user --server https://... --ca-file: %v\n%s", err, out)
	}
	p, err := proxy.New([]string{"https://" + c.members[2]}, proxy.Options{CAFile: c.caPEM, Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Listen("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	go p.Serve(ctx)
	if err := call(&http.Client{Timeout: 5 * time.Second}, "GET", "http://"+p.Addr().String()+"/v1/users/"+b.Name+"/posts", "", "", http.StatusOK, nil); err != nil {
		t.Errorf("appnode proxy to https members: %v", err)
	}

	// Plain HTTP to the TLS API, and HTTPS with another CA.
	err = call(&http.Client{Timeout: 5 * time.Second}, "GET", "http://"+c.members[0]+"/healthz", "", "", http.StatusBadRequest, nil)
	if err != nil {
		t.Errorf("plain HTTP to the HTTPS API: %v", err)
	}
	other, _ := certs.NewAuthority("another CA")
	wrong := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: other.Pool()}}, Timeout: 5 * time.Second}
	if _, err := wrong.Get(url(0, "/healthz")); err == nil || !strings.Contains(err.Error(), "certificate signed by unknown authority") {
		t.Errorf("a client trusting another CA: %v, want an unknown authority error", err)
	}
}

// TestTLSRotationUnderLoad: new API certificates mid-load, picked up
// from the files (member 0), on SIGHUP (member 1) and on POST /v1/reload
// (member 2, after an expired one it refuses), fail no request; every
// member then serves its new certificate.
func TestTLSRotationUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three appnode daemons")
	}
	c := startTLSCluster(t, 3)
	hc := c.httpsClient(true)
	var u struct{ Name, Token string }
	if err := call(hc, "POST", "https://"+c.members[0]+"/v1/users", "", `{"name":"rotor"}`, http.StatusCreated, &u); err != nil {
		t.Fatal(err)
	}
	served := func(i int) string {
		conn, err := tls.Dial("tcp", c.members[i], &tls.Config{RootCAs: c.ca.Pool()})
		if err != nil {
			t.Fatalf("TLS to %s: %v", c.members[i], err)
		}
		defer conn.Close()
		return conn.ConnectionState().PeerCertificates[0].SerialNumber.String()
	}
	before := []string{served(0), served(1), served(2)}

	var ok, failed atomic.Int64
	var errMu sync.Mutex
	var errs []string
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; n < 2000; n++ { // bounded; stop ends it sooner
				select {
				case <-stop:
					return
				default:
				}
				m := c.members[(w+n)%len(c.members)]
				var err error
				if n%2 == 0 {
					err = call(hc, "POST", "https://"+m+"/v1/users/"+u.Name+"/posts", u.Token, `{"text":"rotation"}`, http.StatusCreated, nil)
				} else {
					err = call(hc, "GET", "https://"+m+"/v1/users/"+u.Name+"/posts?limit=1", "", "", http.StatusOK, nil)
				}
				if err != nil {
					failed.Add(1)
					errMu.Lock()
					errs = append(errs, err.Error())
					errMu.Unlock()
				} else {
					ok.Add(1)
				}
			}
		}()
	}
	time.Sleep(500 * time.Millisecond)
	c.issue(t, 0, time.Hour) // seen by the file check
	c.issue(t, 1, time.Hour)
	c.ds[1].cmd.Process.Signal(syscall.SIGHUP)
	c.issue(t, 2, -time.Hour) // expired: refused, the old one serves on
	if code, body := reload(t, c.ds[2].admin); code != http.StatusUnprocessableEntity || !strings.Contains(body, "expired") {
		t.Errorf("reload with an expired certificate = %d %s, want 422 saying it expired", code, body)
	}
	time.Sleep(1500 * time.Millisecond)
	if got := served(2); got != before[2] {
		t.Errorf("member 2 serves another certificate after an expired one was refused")
	}
	c.issue(t, 2, time.Hour)
	if code, body := reload(t, c.ds[2].admin); code != http.StatusOK {
		t.Errorf("reload with a new certificate = %d %s", code, body)
	}
	time.Sleep(500 * time.Millisecond)
	close(stop)
	wg.Wait()
	if failed.Load() != 0 || ok.Load() < 20 {
		t.Errorf("%d requests answered, %d failed during rotation: %v", ok.Load(), failed.Load(), errs[:min(len(errs), 5)])
	}
	t.Logf("%d requests, each over a new TLS connection, during the rotation; %d failed", ok.Load(), failed.Load())
	for i := range 3 {
		if served(i) == before[i] {
			t.Errorf("member %d still serves its old certificate", i)
		}
	}
}

// reload POSTs /v1/reload to an admin listener.
func reload(t *testing.T, admin string) (int, string) {
	t.Helper()
	resp, err := http.Post("http://"+admin+"/v1/reload", "application/json", bytes.NewReader(nil))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
