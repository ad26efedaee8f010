package main

import (
	"bytes"
	"fmt"
	"html/template"
	"math"
	"os"
	"slices"
	"sort"
	"strings"
	"time"
)

// A drill's HTML report: the text table's findings, and a timeline in
// SVG of what the client saw (every request and lookup, by 10 ms) while
// the fault was injected and healed, under which machine held each
// VIP. Self-contained: no script, style sheet, font or image comes from
// elsewhere.

// Timeline geometry, in SVG user units (pixels at 100%).
const (
	plotLeft   = 130  // room for the lane names
	plotWidth  = 1100 // the drill's duration
	laneHeight = 22
	laneGap    = 8
	axisHeight = 28
	bucket     = 10 * time.Millisecond // the load's interval: one lookup and one request each
)

// Colours: what the client saw, and which frontend held a VIP.
var (
	colourOK      = "#2e9b4f"
	colourFail    = "#d62728"
	colourServers = map[string]string{"ns1": "#1f77b4", "ns2": "#9467bd"}
	colourHolders = map[string]string{"fe1": "#8c6d31", "fe2": "#ff7f0e", "fe3": "#7f7f7f", "fe4": "#bcbd22"}
	colourBoth    = "#e377c2" // two machines hold it
	colourNobody  = "#d62728"
)

// svgRect is one rectangle of the timeline; Data are its data-*
// attributes (counts), which tests read.
type svgRect struct {
	X, Y, W, H float64
	Fill       string
	Class      string
	Title      string
	Data       template.HTMLAttr
}

type svgText struct {
	X, Y   float64
	Text   string
	Anchor string
}

type svgLine struct {
	X1, Y1, X2, Y2 float64
	Class          string
}

// timeline is a drill's picture.
type timeline struct {
	Width, Height float64
	Rects         []svgRect
	Texts         []svgText
	Lines         []svgLine
	Legend        []legendItem
}

type legendItem struct{ Colour, Text string }

// newTimeline draws d: a lane of client requests (writes and reads), a
// lane of DNS lookups coloured by the server that answered, a lane per
// VIP coloured by its holder, and the fault from injection to heal.
func newTimeline(d *drillRun) *timeline {
	t0, t1 := d.start, d.end
	for _, o := range d.report.Ops {
		start, end := o.span()
		if t0.IsZero() || start.Before(t0) {
			t0 = start
		}
		if end.After(t1) {
			t1 = end
		}
	}
	dur := t1.Sub(t0)
	if dur <= 0 {
		dur = time.Second
	}
	x := func(t time.Time) float64 {
		return plotLeft + math.Round(float64(t.Sub(t0))/float64(dur)*plotWidth*10)/10
	}
	bw := math.Max(1, float64(bucket)/float64(dur)*plotWidth)
	tl := &timeline{Width: plotLeft + plotWidth + 20}
	y := float64(axisHeight)
	lane := func(name string) float64 {
		ly := y
		tl.Texts = append(tl.Texts, svgText{X: plotLeft - 8, Y: ly + laneHeight*0.7, Text: name, Anchor: "end"})
		y += laneHeight + laneGap
		return ly
	}
	top := y

	// The client's requests and lookups, each from its start to its
	// end (at least 10 ms wide, the load's interval); failures drawn
	// last, over the rest.
	ry := lane("HTTP requests")
	dy := lane("DNS lookups")
	var failures []svgRect
	for _, o := range d.report.Ops {
		start, end := o.span()
		r := svgRect{X: x(start), H: laneHeight, W: math.Max(bw, x(end)-x(start))}
		switch {
		case o.Kind == "dns":
			r.Y = dy
			ns1, ns2, fail := 0, 0, 0
			switch {
			case !o.OK:
				r.Fill, r.Class, fail = colourFail, "dns fail", 1
			case o.Server == "ns2":
				r.Fill, r.Class, ns2 = colourServers["ns2"], "dns ns2", 1
			default:
				r.Fill, r.Class, ns1 = colourServers["ns1"], "dns ns1", 1
			}
			r.Data = template.HTMLAttr(fmt.Sprintf(`data-ns1="%d" data-ns2="%d" data-fail="%d"`, ns1, ns2, fail))
		case o.OK:
			r.Y, r.Fill, r.Class, r.Data = ry, colourOK, "req ok", `data-ok="1" data-fail="0"`
		default:
			r.Y, r.Fill, r.Class, r.Data = ry, colourFail, "req fail", `data-ok="0" data-fail="1"`
		}
		if o.Err != "" {
			r.Title = fmt.Sprintf("%s %s %s: %s (%.0f ms)", o.Kind, o.User, o.VIP, o.Err, o.Took.Seconds()*1000)
		}
		if strings.HasSuffix(r.Class, "fail") {
			failures = append(failures, r)
		} else {
			tl.Rects = append(tl.Rects, r)
		}
	}
	tl.Rects = append(tl.Rects, failures...)

	// Which frontend held each VIP, from one sample to the next.
	for _, vip := range vips() {
		vy := lane("VIP " + vip)
		for i, s := range d.samples {
			end := t1
			if i+1 < len(d.samples) {
				end = d.samples[i+1].At
			}
			h := slices.Clone(s.Holders[vip])
			sort.Strings(h)
			who := strings.Join(h, "+")
			fill := colourHolders[who]
			switch {
			case len(h) == 0:
				fill, who = colourNobody, "nobody"
			case len(h) > 1:
				fill = colourBoth
			}
			if n := len(tl.Rects); n > 0 && tl.Rects[n-1].Y == vy && tl.Rects[n-1].Title == vip+": "+who {
				tl.Rects[n-1].W = x(end) - tl.Rects[n-1].X // the same holder goes on
				continue
			}
			tl.Rects = append(tl.Rects, svgRect{X: x(s.At), Y: vy, W: math.Max(0.5, x(end)-x(s.At)), H: laneHeight, Fill: fill,
				Class: "vip", Title: vip + ": " + who, Data: template.HTMLAttr(fmt.Sprintf(`data-vip="%s" data-holder="%s"`, vip, who))})
		}
	}
	bottom := y - laneGap
	tl.Height = bottom + 12

	// The fault, from injection to heal, over every lane; the moment the
	// lab was found healed.
	if !d.faultAt.IsZero() {
		end := d.healAt
		if end.IsZero() {
			end = t1
		}
		tl.Rects = append([]svgRect{{X: x(d.faultAt), Y: top - 4, W: math.Max(1, x(end)-x(d.faultAt)), H: bottom - top + 8,
			Fill: "#fff3b0", Class: "fault", Title: "fault injected until healed"}}, tl.Rects...)
		tl.Lines = append(tl.Lines, svgLine{X1: x(d.faultAt), Y1: top - 12, X2: x(d.faultAt), Y2: bottom + 4, Class: "mark"})
		tl.Texts = append(tl.Texts, svgText{X: x(d.faultAt) + 3, Y: top - 6, Text: "fault", Anchor: "start"})
		if !d.healAt.IsZero() {
			tl.Lines = append(tl.Lines, svgLine{X1: x(d.healAt), Y1: top - 12, X2: x(d.healAt), Y2: bottom + 4, Class: "mark"})
			tl.Texts = append(tl.Texts, svgText{X: x(d.healAt) + 3, Y: top - 6, Text: "heal", Anchor: "start"})
		}
	}
	if !d.healedAt.IsZero() {
		tl.Lines = append(tl.Lines, svgLine{X1: x(d.healedAt), Y1: top - 12, X2: x(d.healedAt), Y2: bottom + 4, Class: "healed"})
		tl.Texts = append(tl.Texts, svgText{X: x(d.healedAt) + 3, Y: top - 6, Text: "healed", Anchor: "start"})
	}

	// Seconds from the fault (or the start), below the lanes.
	zero := d.faultAt
	if zero.IsZero() {
		zero = t0
	}
	for s := -math.Floor(zero.Sub(t0).Seconds()); s <= t1.Sub(zero).Seconds(); s++ {
		tx := x(zero.Add(time.Duration(s * float64(time.Second))))
		tl.Lines = append(tl.Lines, svgLine{X1: tx, Y1: bottom + 2, X2: tx, Y2: bottom + 6, Class: "tick"})
		label := fmt.Sprintf("%+.0fs", s)
		if s == 0 {
			label = "0"
		}
		if int(s)%2 == 0 {
			tl.Texts = append(tl.Texts, svgText{X: tx, Y: bottom + 16, Text: label, Anchor: "middle"})
		}
	}
	tl.Height = bottom + 22

	tl.Legend = []legendItem{{colourOK, "request answered"}, {colourFail, "request or lookup failed"},
		{colourServers["ns1"], "answered by ns1"}, {colourServers["ns2"], "answered by ns2"}}
	for _, fe := range frontends() {
		tl.Legend = append(tl.Legend, legendItem{colourHolders[fe.name], "held by " + fe.name})
	}
	tl.Legend = append(tl.Legend, legendItem{colourBoth, "held by two"}, legendItem{colourNobody, "held by nobody"}, legendItem{"#fff3b0", "fault"})
	return tl
}

// reportView is what the templates show of one drill.
type reportView struct {
	Name, What, Result string
	Err                string
	Table              string // the text table, as printed
	Timeline           *timeline
	Figures            []figure
	Notes, Failed      []string
}

// figure is one number of the table, with a key tests find it by.
type figure struct{ Key, Label, Value string }

func newReportView(r drillResult) reportView {
	v := reportView{Name: r.drill.name, What: r.drill.what, Result: "ok"}
	if !r.ok() {
		v.Result = "FAILED"
	}
	if r.err != nil {
		v.Err = r.err.Error()
	}
	if d := r.run; d != nil {
		v.Notes, v.Failed = d.notes, d.failed
		var b bytes.Buffer
		d.print(&b)
		v.Table = b.String()
		v.Timeline = newTimeline(d)
		servers := slices.Sorted(mapKeysOf(d.report.DNSByServer))
		var answered []string
		for _, s := range servers {
			answered = append(answered, fmt.Sprintf("%s %d", s, d.report.DNSByServer[s]))
		}
		v.Figures = []figure{
			{"http-failed", "client HTTP requests failed", fmt.Sprint(d.httpBad)},
			{"http-total", "client HTTP requests", fmt.Sprint(d.httpAll)},
			{"http-outage", "longest outage (one user)", fmt.Sprintf("%.2fs", d.outage.Seconds())},
			{"dns-failed", "DNS lookups failed", fmt.Sprint(d.dnsBad)},
			{"dns-total", "DNS lookups", fmt.Sprint(d.dnsAll)},
			{"dns-outage", "longest DNS outage", fmt.Sprintf("%.2fs", d.dnsOut.Seconds())},
			{"dns-answered", "answered by", strings.Join(answered, ", ")},
			{"writes-acked", "writes acknowledged", fmt.Sprint(d.report.Acked)},
			{"writes-lost", "acknowledged writes lost", fmt.Sprint(len(d.report.Lost))},
			{"vips-before", "VIPs before", holdersText(d.before)},
			{"vips-fault", "VIPs in fault", holdersText(d.during)},
			{"vips-after", "VIPs after", holdersText(d.after)},
		}
	}
	return v
}

func mapKeysOf(m map[string]int) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// writeReport writes one drill's report to path.
func writeReport(path string, r drillResult) error {
	return writeHTML(path, "drill", newReportView(r))
}

// writeSummary writes the page of a run of several drills.
func writeSummary(path string, results []drillResult) error {
	var views []reportView
	for _, r := range results {
		views = append(views, newReportView(r))
	}
	var b bytes.Buffer
	printSummary(&b, results)
	return writeHTML(path, "summary", struct {
		Drills []reportView
		Table  string
		When   string
	}{views, b.String(), time.Now().UTC().Format(time.RFC3339)})
}

func writeHTML(path, name string, data any) error {
	var b bytes.Buffer
	if err := reportTemplates.ExecuteTemplate(&b, name, data); err != nil {
		return fmt.Errorf("rendering %s: %w", path, err)
	}
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		return fmt.Errorf("writing the drill report: %w", err)
	}
	return nil
}

var reportTemplates = template.Must(template.New("").Parse(`
{{define "style"}}<style>
body { font: 14px/1.4 "DejaVu Sans", sans-serif; margin: 24px; color: #222; background: #fff; }
h1 { font-size: 20px; margin: 0 0 4px; } h2 { font-size: 17px; margin: 28px 0 4px; }
.ok { color: #2e9b4f; } .FAILED { color: #d62728; }
table.figures { border-collapse: collapse; margin: 12px 0; }
table.figures td, table.figures th { border: 1px solid #ccc; padding: 3px 8px; text-align: left; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
pre { background: #f6f6f6; padding: 8px; overflow-x: auto; }
svg text { font: 11px "DejaVu Sans", sans-serif; fill: #333; }
svg line.mark { stroke: #333; stroke-width: 1.5; } svg line.healed { stroke: #2e9b4f; stroke-width: 1.5; stroke-dasharray: 4 3; }
svg line.tick { stroke: #888; }
.legend span { display: inline-block; margin-right: 14px; } .legend i { display: inline-block; width: 12px; height: 12px; margin-right: 4px; vertical-align: -1px; }
</style>{{end}}

{{define "timeline"}}<svg class="timeline" xmlns="http://www.w3.org/2000/svg" width="{{.Width}}" height="{{.Height}}" viewBox="0 0 {{.Width}} {{.Height}}">
{{range .Rects}}<rect x="{{.X}}" y="{{.Y}}" width="{{.W}}" height="{{.H}}" fill="{{.Fill}}" class="{{.Class}}" {{.Data}}>{{if .Title}}<title>{{.Title}}</title>{{end}}</rect>
{{end}}{{range .Lines}}<line x1="{{.X1}}" y1="{{.Y1}}" x2="{{.X2}}" y2="{{.Y2}}" class="{{.Class}}"/>
{{end}}{{range .Texts}}<text x="{{.X}}" y="{{.Y}}" text-anchor="{{.Anchor}}">{{.Text}}</text>
{{end}}</svg>
<p class="legend">{{range .Legend}}<span><i style="background: {{.Colour}}"></i>{{.Text}}</span>{{end}}</p>{{end}}

{{define "figures"}}<table class="figures" id="figures-{{.Name}}">
{{range .Figures}}<tr><th>{{.Label}}</th><td class="n" data-key="{{.Key}}">{{.Value}}</td></tr>
{{end}}</table>
{{range .Notes}}<p>note: {{.}}</p>{{end}}{{range .Failed}}<p class="FAILED">FAILED: {{.}}</p>{{end}}{{end}}

{{define "drill"}}<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>drill {{.Name}}: {{.Result}}</title>{{template "style"}}</head>
<body>
<h1>drill {{.Name}}: <span class="{{.Result}}" id="result">{{.Result}}</span></h1>
<p>{{.What}}</p>
{{if .Err}}<p class="FAILED">error: {{.Err}}</p>{{end}}
{{with .Timeline}}{{template "timeline" .}}{{end}}
{{template "figures" .}}
{{if .Table}}<pre>{{.Table}}</pre>{{end}}
</body></html>
{{end}}

{{define "summary"}}<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>ringfront drills</title>{{template "style"}}</head>
<body>
<h1>ringfront drills</h1>
<p>{{.When}}</p>
<pre id="summary">{{.Table}}</pre>
{{range .Drills}}<h2 id="{{.Name}}">{{.Name}}: <span class="{{.Result}}">{{.Result}}</span> <small><a href="drill-{{.Name}}.html">its page</a></small></h2>
<p>{{.What}}</p>
{{if .Err}}<p class="FAILED">error: {{.Err}}</p>{{end}}
{{with .Timeline}}{{template "timeline" .}}{{end}}
{{template "figures" .}}
{{end}}
</body></html>
{{end}}
`))
