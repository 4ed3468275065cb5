//go:build linux

package main

import (
	"flag"
	"fmt"
	"image/color"
	"math"
	"os"
	"sort"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// cmdPlot draws ADD and DEL median latency against pods attached for both
// columns of scenario 2, from a saved JSON report.
func cmdPlot(args []string) int {
	fs := flag.NewFlagSet("plot", flag.ExitOnError)
	in := fs.String("in", "", "JSON report of a run")
	out := fs.String("out", "docs/bench-latency-vs-pods.png", "PNG to write")
	_ = fs.Parse(args)
	r, err := readReport(*in)
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench plot: %v\n", err)
		return 1
	}
	if err := drawLatency(r, *out); err != nil {
		fmt.Fprintf(os.Stderr, "bench plot: %v\n", err)
		return 1
	}
	return 0
}

func drawLatency(r *Report, out string) error {
	p := plot.New()
	p.Title.Text = fmt.Sprintf("CNI ADD/DEL latency vs pods attached (bridge + ipMasq, %s run, %d CPUs)", r.Mode, r.Host.CPUs)
	p.X.Label.Text = "pods already attached to the bridge"
	p.Y.Label.Text = "median latency per call (ms, log scale)"
	p.Y.Scale = plot.LogScale{}
	p.Y.Tick.Marker = msTicks{}
	p.Legend.Top = true
	p.Legend.Left = true
	p.Legend.XOffs = vg.Points(8)
	p.Legend.YOffs = -vg.Points(12)
	p.Add(plotter.NewGrid())

	colors := map[string]color.Color{
		"podns": color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff},
		"ref":   color.RGBA{R: 0xd6, G: 0x27, B: 0x28, A: 0xff},
	}
	n := 0
	minY, maxY := math.Inf(1), 0.0
	for _, side := range []string{"podns", "ref"} {
		label := side
		if im := r.impl(side); im != nil {
			label = im.Label
		}
		for _, op := range []string{"ADD", "DEL"} {
			var pts plotter.XYs
			for _, pr := range r.Probes {
				if pr.Scenario != 2 || pr.Op != op || pr.alone() || pr.Group == sameWindowGroup {
					continue
				}
				if s := pr.Stats[side]; s != nil && s.N > 0 && s.Median > 0 {
					pts = append(pts, plotter.XY{X: float64(pr.Pods), Y: s.Median})
					minY, maxY = math.Min(minY, s.Median), math.Max(maxY, s.Median)
				}
			}
			if len(pts) == 0 {
				continue
			}
			sort.Slice(pts, func(i, j int) bool { return pts[i].X < pts[j].X })
			l, s, err := plotter.NewLinePoints(pts)
			if err != nil {
				return err
			}
			l.Color, s.Color = colors[side], colors[side]
			l.Width = vg.Points(2)
			s.Radius = vg.Points(3)
			if op == "DEL" {
				l.Dashes = []vg.Length{vg.Points(6), vg.Points(4)}
				s.Shape = draw.BoxGlyph{}
			} else {
				s.Shape = draw.CircleGlyph{}
			}
			p.Add(l, s)
			p.Legend.Add(label+" "+op, l, s)
			n++
		}
	}
	if n == 0 {
		return fmt.Errorf("the report has no scenario 2 data")
	}
	// Room above the lines for the legend, on the log axis.
	p.Y.Min, p.Y.Max = minY/1.5, maxY*6
	return p.Save(9*vg.Inch, 5.5*vg.Inch, out)
}

// msTicks labels a log axis at 1-2-5 steps, which reads better than powers
// of ten alone over the 5-1000 ms range the bench covers.
type msTicks struct{}

func (msTicks) Ticks(min, max float64) []plot.Tick {
	var ts []plot.Tick
	for dec := math.Pow(10, math.Floor(math.Log10(min))); dec <= max; dec *= 10 {
		for _, m := range []float64{1, 2, 5} {
			v := m * dec
			if v < min || v > max {
				continue
			}
			ts = append(ts, plot.Tick{Value: v, Label: fmt.Sprintf("%g", v)})
		}
	}
	return ts
}
