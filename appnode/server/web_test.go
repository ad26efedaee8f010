package server

import (
	"strings"
	"testing"
)

// TestWebFiles: every member serves the page at / and its files under
// /web/; anything else there is a JSON 404.
func TestWebFiles(t *testing.T) {
	ms := newCluster(t, clusterOpts{n: 1})
	for _, tt := range []struct {
		path, ctype, want string
		code              int
	}{
		{"/", "text/html", `<script src="/web/app.js"`, 200},
		{"/web/app.js", "text/javascript", "timeline/stream", 200},
		{"/web/style.css", "text/css", "#live.on", 200},
		{"/web/index.html", "text/html", "<title>", 200},
		{"/web/nothing.js", "application/json", `"error"`, 404},
		{"/web/..%2fweb.go", "application/json", `"error"`, 404},
	} {
		t.Run(tt.path, func(t *testing.T) {
			a := do(t, nil, "GET", ms[0].url(tt.path), "", nil)
			if a.code != tt.code || !strings.HasPrefix(a.header.Get("Content-Type"), tt.ctype) || !strings.Contains(string(a.body), tt.want) {
				t.Errorf("GET %s = %d %q %.80q, want %d %q with %q", tt.path, a.code, a.header.Get("Content-Type"), a.body, tt.code, tt.ctype, tt.want)
			}
			if tt.code == 200 && !strings.Contains(a.header.Get("Content-Security-Policy"), "default-src 'self'") {
				t.Errorf("GET %s has no content security policy", tt.path)
			}
		})
	}
}
