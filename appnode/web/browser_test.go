package web_test

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/ringfront/ringfront/appnode/apptest"
	"github.com/ringfront/ringfront/internal/browsertest"
)

// uris records every request URI the cluster saw.
type uris struct {
	mu   sync.Mutex // guards list
	list []string
}

func (u *uris) add(s string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.list = append(u.list, s)
}

func (u *uris) containing(s string) []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	var out []string
	for _, x := range u.list {
		if strings.Contains(x, s) {
			out = append(out, x)
		}
	}
	return out
}

// startCluster starts n members on loopback, recording every request
// URI they see, and returns their URLs.
func startCluster(t *testing.T, n int, seen *uris) []string {
	t.Helper()
	ms := apptest.Cluster(t, n, apptest.Options{Wrap: func(_ int, h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			seen.add(r.RequestURI)
			h.ServeHTTP(w, r)
		})
	}})
	var urls []string
	for _, m := range ms {
		urls = append(urls, m.URL)
	}
	return urls
}

// TestBrowserLiveTimeline drives Debian's Chromium, headless, against a
// 3-member loopback cluster: two users sign up on the page (each on
// another member, so each has its own localStorage), one follows the
// other, the other posts, and the post appears on the first user's open
// page without a reload.
func TestBrowserLiveTimeline(t *testing.T) {
	var seen uris
	urls := startCluster(t, 3, &seen)
	// The browser starts after the cluster, so that it stops first: its
	// open stream would hold the members' shutdown.
	alice := browsertest.Start(t, 900, 1000, 90*time.Second)
	bob, bcl := chromedp.NewContext(alice) // a second tab of the same browser
	defer bcl()

	poll := func(expr string, d time.Duration) chromedp.Action[chromedp.Void] {
		return chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingTimeout(d), chromedp.WithPollingInterval(20*time.Millisecond))
	}
	signUp := func(tab context.Context, url, name string) string {
		t.Helper()
		err := chromedp.Do(tab,
			chromedp.Navigate(url+"/"),
			chromedp.WaitVisible(chromedp.ID("signup-name")),
			chromedp.SetValue(chromedp.ID("signup-name"), name),
			chromedp.Click(chromedp.ID("signup-btn")),
			chromedp.WaitVisible(chromedp.ID("token-once")),
			chromedp.WaitVisible(chromedp.ID("home")),
		)
		if err != nil {
			t.Fatalf("%s signing up: %v", name, err)
		}
		token, err := chromedp.Run(tab, chromedp.Text(chromedp.ID("token-value")))
		if err != nil {
			t.Fatal(err)
		}
		stored, err := chromedp.Run(tab, chromedp.Evaluate[string](`JSON.parse(localStorage.getItem("ringfront.session")).token`))
		if err != nil || stored != token || len(token) < 20 {
			t.Fatalf("%s's token shown %q, kept %q (%v)", name, token, stored, err)
		}
		return token
	}
	aliceToken := signUp(alice, urls[0], "alice")
	signUp(bob, urls[1], "bob")

	err := chromedp.Do(alice,
		chromedp.SetValue(chromedp.ID("follow-name"), "bob"),
		chromedp.Click(chromedp.ID("follow-btn")),
		poll(`document.getElementById("status").textContent.includes("Following @bob")`, 10*time.Second),
		poll(`document.getElementById("live").textContent === "live"`, 10*time.Second),
	)
	if err != nil {
		status, _ := chromedp.Run(alice, chromedp.Text(chromedp.ID("status")))
		t.Fatalf("alice following bob (status %q): %v", status, err)
	}
	err = chromedp.Do(bob,
		chromedp.SetValue(chromedp.ID("post-text"), "hello alice, from bob's page"),
		chromedp.Click(chromedp.ID("post-btn")),
		poll(`document.getElementById("status").textContent === "Posted."`, 10*time.Second),
	)
	if err != nil {
		t.Fatalf("bob posting: %v", err)
	}
	posted := time.Now()
	err = chromedp.Do(alice, poll(`document.getElementById("timeline").textContent.includes("hello alice, from bob's page")`, 5*time.Second))
	timeline, _ := chromedp.Run(alice, chromedp.Text(chromedp.ID("timeline")))
	if err != nil {
		t.Fatalf("bob's post did not appear on alice's open page (timeline %q): %v", timeline, err)
	}
	t.Logf("bob's post appeared on alice's page %v after bob's page said Posted.", time.Since(posted).Round(time.Millisecond))
	if !strings.Contains(timeline, "@bob") {
		t.Errorf("alice's timeline shows %q, without the author", timeline)
	}

	// Anyone's posts can be read on the page, without signing in as them.
	err = chromedp.Do(bob,
		chromedp.SetValue(chromedp.ID("feed-name"), "bob"),
		chromedp.Click(chromedp.ID("feed-btn")),
		poll(`document.getElementById("feed-posts").textContent.includes("hello alice, from bob's page")`, 5*time.Second),
	)
	if err != nil {
		feedText, _ := chromedp.Run(bob, chromedp.Text(chromedp.ID("feed-posts")))
		t.Errorf("bob's feed on the page (%q): %v", feedText, err)
	}

	shot, err := chromedp.Run(alice, chromedp.FullScreenshot(100)) // quality 100 gives a PNG
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	browsertest.SaveScreenshot(t, "browser-live-timeline.png", shot)

	// Alice asks for a new token on the page: the page keeps and shows
	// the new one, and the old one is refused (401) through every member.
	err = chromedp.Do(alice,
		chromedp.Click(chromedp.ID("rotate-btn")),
		poll(`document.getElementById("status").textContent.includes("New token issued")`, 10*time.Second),
		poll(`document.getElementById("live").textContent === "live"`, 10*time.Second),
	)
	if err != nil {
		status, _ := chromedp.Run(alice, chromedp.Text(chromedp.ID("status")))
		t.Fatalf("alice rotating her token (status %q): %v", status, err)
	}
	newToken, err := chromedp.Run(alice, chromedp.Evaluate[string](`JSON.parse(localStorage.getItem("ringfront.session")).token`))
	shown, _ := chromedp.Run(alice, chromedp.Text(chromedp.ID("token-value")))
	if err != nil || newToken == aliceToken || shown != newToken {
		t.Fatalf("after the rotation the page keeps %q and shows %q (old %q, %v)", newToken, shown, aliceToken, err)
	}
	for _, u := range urls {
		for tok, want := range map[string]int{aliceToken: http.StatusUnauthorized, newToken: http.StatusOK} {
			req, _ := http.NewRequest("GET", u+"/v1/users/alice/timeline?limit=1", nil)
			req.Header.Set("Authorization", "Bearer "+tok)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != want {
				t.Errorf("alice's timeline via %s with the %s token = %d, want %d", u, map[bool]string{true: "old", false: "new"}[tok == aliceToken], resp.StatusCode, want)
			}
		}
	}

	// The token went only into headers: no URL the cluster saw has it.
	if leaked := seen.containing(aliceToken); len(leaked) > 0 {
		t.Errorf("alice's token appeared in request URLs: %v", leaked)
	}
}
