// Package browsertest starts Debian's Chromium, headless, for the tests
// that look at a page in a real browser (appnode's web page, the drill
// reports), and keeps their screenshots.
package browsertest

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// Chromium is Debian's browser, which .ci/deps installs.
const Chromium = "/usr/bin/chromium"

// Start starts a headless Chromium with a window of width × height and
// returns a tab in it; the browser stops when the test ends, or after
// timeout. Start it after the servers its pages keep connections to, so
// that it stops before them (cleanups run last first). It skips the
// test when Chromium is not installed or under -short.
func Start(t *testing.T, width, height int, timeout time.Duration) context.Context {
	t.Helper()
	if _, err := os.Stat(Chromium); err != nil {
		t.Skip("Chromium is not installed (.ci/deps installs it): ", err)
	}
	if testing.Short() {
		t.Skip("starts Chromium; not in -short")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(Chromium),
		chromedp.WindowSize(width, height),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
	)
	if os.Geteuid() == 0 {
		opts = append(opts, chromedp.NoSandbox) // Chromium's sandbox refuses to run as root
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	actx, acancel := chromedp.NewExecAllocator(ctx, opts...)
	tab, tcancel := chromedp.NewContext(actx, chromedp.WithErrorf(t.Logf))
	t.Cleanup(func() { tcancel(); acancel(); cancel() })
	if err := chromedp.Do(tab); err != nil { // starts the browser
		t.Fatalf("starting %s: %v", Chromium, err)
	}
	return tab
}

// SaveScreenshot writes a PNG screenshot to name in $ARTIFACTS when set
// (CI keeps it), else in the test's temporary directory, and logs where.
func SaveScreenshot(t *testing.T, name string, png []byte) string {
	t.Helper()
	dir := os.Getenv("ARTIFACTS")
	if dir == "" {
		dir = t.TempDir()
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", path)
	return path
}
