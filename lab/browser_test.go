package main

import (
	"bytes"
	"image"
	"image/color"
	"image/png"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/ringfront/ringfront/internal/browsertest"
)

// TestDrillReportInBrowser opens a drill's report in Debian's Chromium,
// headless: the timeline is drawn (the fault's band and the failed
// requests' red are on the screenshot), and the browser's count of the
// failed requests drawn is the table's. The screenshot is kept.
func TestDrillReportInBrowser(t *testing.T) {
	tab := browsertest.Start(t, 1300, 900, 60*time.Second)
	dir := t.TempDir()
	path := filepath.Join(dir, "drill-dns-down.html")
	d := syntheticRun(time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC))
	if err := writeReport(path, drillResult{drill: drill{name: "dns-down", what: "SIGKILL dnslb on ns1"}, run: d}); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(tab, chromedp.Navigate("file://"+path), chromedp.WaitVisible(chromedp.CSS("svg.timeline"))); err != nil {
		t.Fatalf("opening the report in %s: %v", browsertest.Chromium, err)
	}
	width, err := chromedp.Run(tab, chromedp.Evaluate[float64](`document.querySelector("svg.timeline").getBoundingClientRect().width`))
	if err != nil || width < 1000 {
		t.Errorf("the timeline is %v px wide (%v), want it drawn at full width", width, err)
	}
	drawn, err := chromedp.Run(tab, chromedp.Evaluate[int](
		`[...document.querySelectorAll("rect.req.fail")].reduce((n, r) => n + Number(r.dataset.fail), 0)`))
	if err != nil {
		t.Fatal(err)
	}
	table, err := chromedp.Run(tab, chromedp.Evaluate[int](`Number(document.querySelector('td[data-key="http-failed"]').textContent)`))
	if err != nil {
		t.Fatal(err)
	}
	if drawn != d.httpBad || table != d.httpBad {
		t.Errorf("failed requests: %d drawn, %d in the table, %d in the drill", drawn, table, d.httpBad)
	}

	shot, err := chromedp.Run(tab, chromedp.FullScreenshot(100)) // quality 100 gives a PNG
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	browsertest.SaveScreenshot(t, "drill-report.png", shot)
	img, err := png.Decode(bytes.NewReader(shot))
	if err != nil {
		t.Fatalf("the screenshot is no PNG: %v", err)
	}
	for name, c := range map[string]color.RGBA{"the fault's band": hexColour(t, "#fff3b0"), "failures": hexColour(t, colourFail),
		"answers": hexColour(t, colourOK), "fe2 holding fe1's VIP": hexColour(t, colourHolders["fe2"])} {
		if n := countColour(img, c); n < 50 {
			t.Errorf("the screenshot shows %d pixels of %s (%v), want a drawn area", n, name, c)
		}
	}
}

func hexColour(t *testing.T, s string) color.RGBA {
	t.Helper()
	var c color.RGBA
	if len(s) != 7 || s[0] != '#' {
		t.Fatalf("colour %q", s)
	}
	b := []byte(s[1:])
	v := func(i int) uint8 {
		n := 0
		for _, ch := range b[i : i+2] {
			n *= 16
			switch {
			case ch >= '0' && ch <= '9':
				n += int(ch - '0')
			case ch >= 'a' && ch <= 'f':
				n += int(ch-'a') + 10
			}
		}
		return uint8(n)
	}
	c.R, c.G, c.B, c.A = v(0), v(2), v(4), 255
	return c
}

func countColour(img image.Image, want color.RGBA) int {
	n := 0
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			if uint8(r>>8) == want.R && uint8(g>>8) == want.G && uint8(bl>>8) == want.B {
				n++
			}
		}
	}
	return n
}
