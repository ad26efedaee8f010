package server

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ringfront/ringfront/appnode/api"
	"github.com/ringfront/ringfront/appnode/feed"
	"github.com/ringfront/ringfront/appnode/store"
	"github.com/ringfront/ringfront/appnode/transport"
)

func TestCreateUser(t *testing.T) {
	m := newCluster(t, clusterOpts{n: 1})[0]
	a := do(t, nil, "POST", m.url("/v1/users"), "", api.CreateUserRequest{Name: "joe"})
	if a.code != http.StatusCreated {
		t.Fatalf("POST /v1/users = %d %s", a.code, a.body)
	}
	var ans api.CreateUserAnswer
	a.decode(t, &ans)
	if ans.Name != "joe" || len(ans.Token) < 40 {
		t.Errorf("answer = %+v", ans)
	}
	if got := a.header.Get(api.HeaderOwner); got != m.addr {
		t.Errorf("%s = %q, want %s", api.HeaderOwner, got, m.addr)
	}
	u, err := m.store.User("joe")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(u.TokenHash), ans.Token) || len(u.TokenHash) != 32 {
		t.Errorf("stored token hash %x does not look like sha256", u.TokenHash)
	}
	a = do(t, nil, "GET", m.url("/v1/users/joe"), "", nil)
	var ua api.UserAnswer
	a.decode(t, &ua)
	if a.code != 200 || ua.Name != "joe" || ua.Created.IsZero() {
		t.Errorf("GET /v1/users/joe = %d %s", a.code, a.body)
	}

	tests := []struct {
		name string
		body any
		code int
		want string
	}{
		{"taken", api.CreateUserRequest{Name: "joe"}, 409, "already exists"},
		{"upper case", api.CreateUserRequest{Name: "Joe"}, 400, "a-z"},
		{"too long", api.CreateUserRequest{Name: strings.Repeat("a", 33)}, 400, "1-32"},
		{"empty", api.CreateUserRequest{Name: ""}, 400, "1-32"},
		{"not json", "name=joe", 400, "not the expected JSON"},
		{"unknown field", `{"name": "ann", "admin": true}`, 400, "unknown field"},
		{"trailing data", `{"name": "ann"} {}`, 400, "after the JSON"},
		{"too large", `{"name": "` + strings.Repeat("a", transport.MaxBody) + `"}`, 413, "larger than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := do(t, nil, "POST", m.url("/v1/users"), "", tt.body)
			if a.code != tt.code || !strings.Contains(a.errorText(t), tt.want) {
				t.Errorf("got %d %s, want %d with %q", a.code, a.body, tt.code, tt.want)
			}
		})
	}
	// The failed attempts changed nothing: joe keeps his token.
	if a := do(t, nil, "POST", m.url("/v1/users/joe/posts"), ans.Token, api.PostRequest{Text: "still me"}); a.code != 201 {
		t.Errorf("posting with the first token after the failed attempts = %d %s", a.code, a.body)
	}
	if a := do(t, nil, "GET", m.url("/v1/users/ann"), "", nil); a.code != 404 {
		t.Errorf("GET unknown user = %d %s", a.code, a.body)
	}
}

func TestPosts(t *testing.T) {
	m := newCluster(t, clusterOpts{n: 1})[0]
	token := createUser(t, m, "joe")
	annToken := createUser(t, m, "ann")
	var want []feed.Post
	for i := range 5 {
		a := do(t, nil, "POST", m.url("/v1/users/joe/posts"), token, api.PostRequest{Text: fmt.Sprintf("post %d ✓", i)})
		if a.code != http.StatusCreated {
			t.Fatalf("post %d = %d %s", i, a.code, a.body)
		}
		var p feed.Post
		a.decode(t, &p)
		if p.Author != "joe" || p.Text != fmt.Sprintf("post %d ✓", i) || p.ID.IsZero() || time.Since(p.Created) > time.Minute {
			t.Errorf("post = %+v", p)
		}
		want = append([]feed.Post{p}, want...)
	}
	// Pages of two, newest first, until the cursor runs out.
	var got []feed.Post
	url := m.url("/v1/users/joe/posts?limit=2")
	for range 10 {
		a := do(t, nil, "GET", url, "", nil)
		if a.code != 200 {
			t.Fatalf("GET %s = %d %s", url, a.code, a.body)
		}
		var page api.PostsAnswer
		a.decode(t, &page)
		got = append(got, page.Posts...)
		if page.Next == "" {
			break
		}
		url = m.url("/v1/users/joe/posts?limit=2&before=" + page.Next)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("feed (-want +got):\n%s", diff)
	}
	a := do(t, nil, "GET", m.url("/v1/users/ann/posts"), "", nil)
	if a.code != 200 || strings.TrimSpace(string(a.body)) != `{"posts":[],"next":""}` {
		t.Errorf("empty feed = %d %s", a.code, a.body)
	}

	tests := []struct {
		name, method, path, token string
		body                      any
		code                      int
		want                      string
	}{
		{"no token", "POST", "/v1/users/joe/posts", "", api.PostRequest{Text: "x"}, 401, "token"},
		{"wrong token", "POST", "/v1/users/joe/posts", "nope", api.PostRequest{Text: "x"}, 403, "wrong token"},
		{"another user's token", "POST", "/v1/users/joe/posts", annToken, api.PostRequest{Text: "x"}, 403, "wrong token"},
		{"unknown user", "POST", "/v1/users/bob/posts", token, api.PostRequest{Text: "x"}, 404, "not found"},
		{"bad name", "POST", "/v1/users/Bob/posts", token, api.PostRequest{Text: "x"}, 400, "a-z"},
		{"empty text", "POST", "/v1/users/joe/posts", token, api.PostRequest{Text: ""}, 400, "1-280"},
		{"281 characters", "POST", "/v1/users/joe/posts", token, api.PostRequest{Text: strings.Repeat("é", 281)}, 400, "281"},
		{"bad json", "POST", "/v1/users/joe/posts", token, "{", 400, "JSON"},
		{"feed of unknown user", "GET", "/v1/users/bob/posts", "", nil, 404, "not found"},
		{"limit 0", "GET", "/v1/users/joe/posts?limit=0", "", nil, 400, "limit"},
		{"limit too big", "GET", "/v1/users/joe/posts?limit=201", "", nil, 400, "limit"},
		{"limit not a number", "GET", "/v1/users/joe/posts?limit=ten", "", nil, 400, "limit"},
		{"bad cursor", "GET", "/v1/users/joe/posts?before=xyz", "", nil, 400, "before"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := do(t, nil, tt.method, m.url(tt.path), tt.token, tt.body)
			if a.code != tt.code || !strings.Contains(a.errorText(t), tt.want) {
				t.Errorf("got %d %s, want %d with %q", a.code, a.body, tt.code, tt.want)
			}
			if tt.code == 401 && a.header.Get("WWW-Authenticate") == "" {
				t.Error("401 without WWW-Authenticate")
			}
		})
	}
	// None of the refused posts was stored.
	posts, _, err := m.store.Posts("joe", feed.ID{}, 100)
	if err != nil || len(posts) != 5 {
		t.Errorf("joe has %d posts stored (%v), want 5", len(posts), err)
	}
}

func TestFollowAndTimeline(t *testing.T) {
	m := newCluster(t, clusterOpts{n: 1})[0]
	tokens := map[string]string{}
	for _, n := range []string{"joe", "ann", "bob", "cat"} {
		tokens[n] = createUser(t, m, n)
	}
	post := func(name, text string) feed.Post {
		a := do(t, nil, "POST", m.url("/v1/users/"+name+"/posts"), tokens[name], api.PostRequest{Text: text})
		var p feed.Post
		a.decode(t, &p)
		return p
	}
	for _, other := range []string{"ann", "bob", "cat"} {
		if a := do(t, nil, "PUT", m.url("/v1/users/joe/following/"+other), tokens["joe"], nil); a.code != 204 {
			t.Fatalf("follow %s = %d %s", other, a.code, a.body)
		}
	}
	// Following twice is fine.
	if a := do(t, nil, "PUT", m.url("/v1/users/joe/following/ann"), tokens["joe"], nil); a.code != 204 {
		t.Errorf("second follow = %d %s", a.code, a.body)
	}
	if a := do(t, nil, "DELETE", m.url("/v1/users/joe/following/cat"), tokens["joe"], nil); a.code != 204 {
		t.Errorf("unfollow = %d %s", a.code, a.body)
	}
	if a := do(t, nil, "PUT", m.url("/v1/users/ann/following/joe"), tokens["ann"], nil); a.code != 204 {
		t.Errorf("ann follows joe = %d %s", a.code, a.body)
	}
	var fing api.FollowingAnswer
	do(t, nil, "GET", m.url("/v1/users/joe/following"), "", nil).decode(t, &fing)
	if diff := cmp.Diff([]string{"ann", "bob"}, fing.Following); diff != "" {
		t.Errorf("joe follows (-want +got):\n%s", diff)
	}
	var fers api.FollowersAnswer
	do(t, nil, "GET", m.url("/v1/users/joe/followers"), "", nil).decode(t, &fers)
	if diff := cmp.Diff([]string{"ann"}, fers.Followers); diff != "" {
		t.Errorf("joe's followers (-want +got):\n%s", diff)
	}
	do(t, nil, "GET", m.url("/v1/users/cat/followers"), "", nil).decode(t, &fers)
	if len(fers.Followers) != 0 {
		t.Errorf("cat's followers after the unfollow = %v", fers.Followers)
	}

	var want []feed.Post
	for i := range 4 {
		for _, n := range []string{"joe", "ann", "bob", "cat"} {
			p := post(n, fmt.Sprintf("%s %d", n, i))
			if n != "cat" {
				want = append([]feed.Post{p}, want...)
			}
		}
	}
	var got []feed.Post
	url := m.url("/v1/users/joe/timeline?limit=5")
	for range 10 {
		a := do(t, nil, "GET", url, tokens["joe"], nil)
		if a.code != 200 {
			t.Fatalf("timeline = %d %s", a.code, a.body)
		}
		var page api.PostsAnswer
		a.decode(t, &page)
		got = append(got, page.Posts...)
		if page.Next == "" {
			break
		}
		url = m.url("/v1/users/joe/timeline?limit=5&before=" + page.Next)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("timeline (-want +got):\n%s", diff)
	}

	tests := []struct {
		name, method, path, token string
		code                      int
		want                      string
	}{
		{"follow without token", "PUT", "/v1/users/joe/following/cat", "", 401, "token"},
		{"follow with another's token", "PUT", "/v1/users/joe/following/cat", tokens["cat"], 403, "wrong token"},
		{"follow unknown user", "PUT", "/v1/users/joe/following/zed", tokens["joe"], 404, "not found"},
		{"unfollow unknown user", "DELETE", "/v1/users/joe/following/zed", tokens["joe"], 404, "not found"},
		{"follow bad name", "PUT", "/v1/users/joe/following/Zed", tokens["joe"], 400, "a-z"},
		{"follow self", "PUT", "/v1/users/joe/following/joe", tokens["joe"], 400, "themselves"},
		{"unknown follower", "PUT", "/v1/users/zed/following/joe", tokens["joe"], 404, "not found"},
		{"following of unknown", "GET", "/v1/users/zed/following", "", 404, "not found"},
		{"followers of unknown", "GET", "/v1/users/zed/followers", "", 404, "not found"},
		{"timeline without token", "GET", "/v1/users/joe/timeline", "", 401, "token"},
		{"timeline wrong token", "GET", "/v1/users/joe/timeline", tokens["ann"], 403, "wrong token"},
		{"timeline bad limit", "GET", "/v1/users/joe/timeline?limit=-1", tokens["joe"], 400, "limit"},
		{"timeline bad cursor", "GET", "/v1/users/joe/timeline?before=0", tokens["joe"], 400, "before"},
		{"timeline of unknown", "GET", "/v1/users/zed/timeline", "x", 404, "not found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := do(t, nil, tt.method, m.url(tt.path), tt.token, nil)
			if a.code != tt.code || !strings.Contains(a.errorText(t), tt.want) {
				t.Errorf("got %d %s, want %d with %q", a.code, a.body, tt.code, tt.want)
			}
		})
	}
	edges, _ := m.store.Edges(store.Followers, "zed")
	if len(edges) != 0 {
		t.Errorf("refused follows left edges: %v", edges)
	}
}

func TestRingRoutes(t *testing.T) {
	ms := newCluster(t, clusterOpts{n: 3})
	if a := do(t, nil, "GET", ms[1].url("/healthz"), "", nil); a.code != 200 {
		t.Errorf("GET /healthz = %d, want 200 from a member with a working store", a.code)
	}
	var r api.RingAnswer
	a := do(t, nil, "GET", ms[1].url("/v1/ring"), "", nil)
	a.decode(t, &r)
	rg := ms[1].srv.Ring()
	if a.code != 200 || r.Version != rg.Version() || r.Self != ms[1].addr || r.Routing != "forward" ||
		r.VNodes != 16 || r.Replicas != 2 || r.Placement != "successor" || len(r.Members) != 3 {
		t.Errorf("GET /v1/ring = %d %+v", a.code, r)
	}
	if got := a.header.Get(api.HeaderRingVersion); got != rg.Version() {
		t.Errorf("%s = %q, want %s", api.HeaderRingVersion, got, rg.Version())
	}
	var l api.LookupAnswer
	do(t, nil, "GET", ms[0].url("/v1/ring/lookup?key=joe"), "", nil).decode(t, &l)
	if want := rg.Preference(nil, "joe"); l.Owner != want[0] || !cmp.Equal(want, l.Preference) || l.Hash != "8ff32489f92f33416694be8fdc2d4c22" {
		t.Errorf("lookup = %+v, want preference %v", l, want)
	}
	if a := do(t, nil, "GET", ms[0].url("/v1/ring/lookup"), "", nil); a.code != 400 || !strings.Contains(a.errorText(t), "key") {
		t.Errorf("lookup without key = %d %s", a.code, a.body)
	}
}

func TestUnknownRoutes(t *testing.T) {
	m := newCluster(t, clusterOpts{n: 1})[0]
	a := do(t, nil, "GET", m.url("/v2/nothing"), "", nil)
	if a.code != 404 || !strings.Contains(a.errorText(t), "no such endpoint") {
		t.Errorf("unknown path = %d %s", a.code, a.body)
	}
	a = do(t, nil, "DELETE", m.url("/v1/users/joe/posts"), "", nil)
	if a.code != 405 || a.header.Get("Allow") != "GET, POST" || !strings.Contains(a.errorText(t), "not allowed") {
		t.Errorf("wrong method = %d %s (Allow %q)", a.code, a.body, a.header.Get("Allow"))
	}
}

// mergeAnswer is the answer of POST /internal/v1/merge (package
// timeline).
type mergeAnswer struct {
	IDs   []feed.ID         `json:"ids"`
	Posts []json.RawMessage `json:"posts"`
	More  bool              `json:"more"`
}

func TestInternalNeedsClusterSecret(t *testing.T) {
	m := newCluster(t, clusterOpts{n: 1})[0]
	token := createUser(t, m, "joe")
	do(t, nil, "POST", m.url("/v1/users/joe/posts"), token, api.PostRequest{Text: "hi"})
	uri := "/internal/v1/merge"
	body := `{"authors": ["joe", "nobody"], "limit": 5}`
	for _, tt := range []struct {
		name, header string
		code         int
	}{
		{"none", "", 401},
		{"wrong secret", transport.Sign([]byte("guess"), time.Now(), "POST", uri, []byte(body)), 401},
		{"other uri", transport.Sign(testSecret, time.Now(), "POST", "/internal/v1/users/joe/followers", []byte(body)), 401},
		{"other method", transport.Sign(testSecret, time.Now(), "GET", uri, []byte(body)), 401},
		{"too old", transport.Sign(testSecret, time.Now().Add(-time.Hour), "POST", uri, []byte(body)), 401},
		{"from the future", transport.Sign(testSecret, time.Now().Add(time.Hour), "POST", uri, []byte(body)), 401},
		{"garbage", "12.34.56", 401},
		{"other body", transport.Sign(testSecret, time.Now(), "POST", uri, []byte(`{"authors": ["joe"], "limit": 5}`)), 401},
		{"signed without the body", transport.Sign(testSecret, time.Now(), "POST", uri, nil), 401},
		{"right", transport.Sign(testSecret, time.Now(), "POST", uri, []byte(body)), 200},
	} {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest("POST", m.url(uri), strings.NewReader(body))
			if tt.header != "" {
				req.Header.Set(api.HeaderCluster, tt.header)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			var ans mergeAnswer
			json.NewDecoder(resp.Body).Decode(&ans)
			resp.Body.Close()
			if resp.StatusCode != tt.code {
				t.Errorf("got %d, want %d", resp.StatusCode, tt.code)
			}
			if tt.code == 200 && (len(ans.IDs) != 1 || len(ans.Posts) != 1 || ans.More) {
				t.Errorf("merge answer = %+v, want joe's one post", ans)
			}
		})
	}
	// Bad merge requests, properly signed.
	for _, bad := range []string{`{"authors": ["Joe"], "limit": 5}`, `{"authors": ["joe"], "limit": 0}`, `{"authors": ["joe"], "limit": 5, "before": "x"}`, `{`} {
		req, _ := http.NewRequest("POST", m.url(uri), strings.NewReader(bad))
		req.Header.Set(api.HeaderCluster, transport.Sign(testSecret, time.Now(), "POST", uri, []byte(bad)))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 400 {
			t.Errorf("merge %s = %d, want 400", bad, resp.StatusCode)
		}
	}
	// A merge for a user who follows many long-named users is larger
	// than an API body may be, and still fine.
	var many []string
	for i := range 2000 {
		many = append(many, fmt.Sprintf("%032d", i))
	}
	big, _ := json.Marshal(map[string]any{"authors": append(many, "joe"), "limit": 5})
	req, _ := http.NewRequest("POST", m.url(uri), strings.NewReader(string(big)))
	req.Header.Set(api.HeaderCluster, transport.Sign(testSecret, time.Now(), "POST", uri, big))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var ans mergeAnswer
	json.NewDecoder(resp.Body).Decode(&ans)
	resp.Body.Close()
	if resp.StatusCode != 200 || len(ans.IDs) != 1 || len(big) <= transport.MaxBody {
		t.Errorf("merge of %d bytes for %d authors = %d %+v", len(big), len(many)+1, resp.StatusCode, ans)
	}
	// The edge route is guarded the same way.
	a := do(t, nil, "PUT", m.url("/internal/v1/users/joe/followers"), "", feed.Edge{Follower: "ann", Followee: "joe", Clock: 1})
	if a.code != 401 || a.errorText(t) != transport.ErrCluster.Error() {
		t.Errorf("unsigned edge = %d %s", a.code, a.body)
	}
	if edges, _ := m.store.Edges(store.Followers, "joe"); len(edges) != 0 {
		t.Errorf("unsigned edge was stored: %v", edges)
	}
	// A signed edge for the wrong user is refused.
	uri = "/internal/v1/users/joe/followers"
	wrong := `{"follower": "ann", "followee": "bob", "clock": 1}`
	req, _ = http.NewRequest("PUT", m.url(uri), strings.NewReader(wrong))
	req.Header.Set(api.HeaderCluster, transport.Sign(testSecret, time.Now(), "PUT", uri, []byte(wrong)))
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 400 {
		t.Errorf("edge for another user = %d, want 400", resp.StatusCode)
	}
}

func TestFullAndReadOnlyDisk(t *testing.T) {
	m := newCluster(t, clusterOpts{n: 1})[0]
	token := createUser(t, m, "joe")
	for _, tt := range []struct {
		name  string
		space store.Space
		code  int
		want  string
	}{
		{"full", store.Space{Free: 1 << 20}, 507, "disk is full"},
		{"read-only", store.Space{Free: 1 << 40, ReadOnly: true}, 503, "read-only"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m.space.Store(tt.space)
			defer m.space.Store(store.Space{Free: 1 << 40})
			for _, req := range []struct {
				method, path string
				body         any
			}{
				{"POST", "/v1/users/joe/posts", api.PostRequest{Text: "hello"}},
				{"POST", "/v1/users", api.CreateUserRequest{Name: "ann"}},
			} {
				a := do(t, nil, req.method, m.url(req.path), token, req.body)
				if a.code != tt.code || !strings.Contains(a.errorText(t), tt.want) {
					t.Errorf("%s %s = %d %s, want %d %q", req.method, req.path, a.code, a.body, tt.code, tt.want)
				}
			}
			// Reads still work.
			if a := do(t, nil, "GET", m.url("/v1/users/joe/posts"), "", nil); a.code != 200 {
				t.Errorf("read on a %s disk = %d %s", tt.name, a.code, a.body)
			}
		})
	}
	if posts, _, _ := m.store.Posts("joe", feed.ID{}, 10); len(posts) != 0 {
		t.Errorf("refused posts were stored: %v", posts)
	}
	if _, err := m.store.User("ann"); err == nil {
		t.Error("refused user was stored")
	}
}
