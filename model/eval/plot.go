package eval

import (
	"fmt"
	"image/color"
	"math"
	"os"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// figureW and figureH are the size of every figure eval writes.
const (
	figureW = 8 * vg.Inch
	figureH = 4.5 * vg.Inch
)

var palette = []color.RGBA{
	{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff}, {R: 0xff, G: 0x7f, B: 0x0e, A: 0xff}, {R: 0x2c, G: 0xa0, B: 0x2c, A: 0xff},
	{R: 0xd6, G: 0x27, B: 0x28, A: 0xff}, {R: 0x94, G: 0x67, B: 0xbd, A: 0xff}, {R: 0x8c, G: 0x56, B: 0x4b, A: 0xff},
	{R: 0xe3, G: 0x77, B: 0xc2, A: 0xff}, {R: 0x7f, G: 0x7f, B: 0x7f, A: 0xff},
}

// PlotCurves draws every model's rolling HR@K over the stream to path
// (PNG), with the legend beside the plot, never over the curves.
func PlotCurves(path, title string, k, window int, rs []Result) error {
	p, leg, err := curvePlot(title, k, window, rs)
	if err != nil {
		return err
	}
	return saveBeside(p, leg, path)
}

// curvePlot is the plot of PlotCurves and its legend, which the plot
// does not draw.
func curvePlot(title string, k, window int, rs []Result) (*plot.Plot, plot.Legend, error) {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = "events"
	p.Y.Label.Text = fmt.Sprintf("HR@%d, rolling over %d scored events", k, window)
	p.Add(plotter.NewGrid())
	leg := plot.NewLegend()
	for i, r := range rs {
		if err := addLine(p, &leg, i, r.Model, r.Curve); err != nil {
			return nil, leg, err
		}
	}
	return p, leg, nil
}

// PlotArchitecture draws the Q-network size of the adaptive models over
// the stream to path (PNG), with the legend beside the plot; models
// without decisions are left out. When one has tiers of item embeddings
// a second panel below draws each tier's parameters over the stream.
func PlotArchitecture(path, title string, rs []Result) error {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = "events"
	p.Y.Label.Text = "Q-network parameters"
	p.Add(plotter.NewGrid())
	leg := plot.NewLegend()
	tiers := plot.New()
	tiers.X.Label.Text = "events"
	tiers.Y.Label.Text = "item-table parameters, by tier"
	tiers.Add(plotter.NewGrid())
	tiered := false
	for i, r := range rs {
		if r.Decisions == nil || len(r.NetCurve) == 0 {
			continue
		}
		if err := addLine(p, &leg, i, r.Model, r.NetCurve); err != nil {
			return err
		}
		for k, tc := range r.TierCurves {
			line, err := addLineOf(tiers, &leg, i, fmt.Sprintf("%s: %d wide", r.Model, tc.Width), tc.Curve)
			if err != nil {
				return err
			}
			// Each tier of a model its own dash, in the model's colour.
			line.Dashes = []vg.Length{vg.Points(float64(2 + 4*k)), vg.Points(2)}
			tiered = true
		}
	}
	if !tiered {
		return saveBeside(p, leg, path)
	}
	// Two panels: the network above, the item tables' tiers below.
	plotArea, legendArea := besideLayout(leg, figureW, figureH)
	leg.Top, leg.Left = true, true
	return savePNG(path, func(c draw.Canvas) {
		mid := (plotArea.Min.Y + plotArea.Max.Y) / 2
		top, bottom := plotArea, plotArea
		top.Min.Y, bottom.Max.Y = mid, mid
		p.Draw(draw.Canvas{Canvas: c.Canvas, Rectangle: top})
		tiers.Draw(draw.Canvas{Canvas: c.Canvas, Rectangle: bottom})
		leg.Draw(draw.Canvas{Canvas: c.Canvas, Rectangle: legendArea})
	})
}

// addLine draws one model's curve in the model's colour, with an entry in leg.
func addLine(p *plot.Plot, leg *plot.Legend, i int, name string, curve []Point) error {
	_, err := addLineOf(p, leg, i, name, curve)
	return err
}

// addLineOf is addLine, returning the line.
func addLineOf(p *plot.Plot, leg *plot.Legend, i int, name string, curve []Point) (*plotter.Line, error) {
	pts := make(plotter.XYs, len(curve))
	for j, c := range curve {
		pts[j].X, pts[j].Y = float64(c.Events), c.Value
	}
	line, err := plotter.NewLine(pts)
	if err != nil {
		return nil, fmt.Errorf("curve of %s: %w", name, err)
	}
	line.Color = palette[i%len(palette)]
	line.Width = vg.Points(1.5)
	p.Add(line)
	leg.Add(name, line)
	return line, nil
}

// besideLayout splits a figure of w × h into the plot's area (axes and
// data) and, to its right, the legend's column, as wide as leg's widest
// entry.
func besideLayout(leg plot.Legend, w, h vg.Length) (plotArea, legendArea vg.Rectangle) {
	r := leg.Rectangle(draw.Canvas{})
	lw := r.Max.X - r.Min.X + vg.Points(12)
	plotArea = vg.Rectangle{Max: vg.Point{X: w - lw, Y: h}}
	legendArea = vg.Rectangle{Min: vg.Point{X: w - lw + vg.Points(6), Y: 0}, Max: vg.Point{X: w, Y: h - vg.Points(6)}}
	return plotArea, legendArea
}

// saveBeside draws p with leg beside it to path (PNG).
func saveBeside(p *plot.Plot, leg plot.Legend, path string) error {
	plotArea, legendArea := besideLayout(leg, figureW, figureH)
	leg.Top, leg.Left = true, true
	return savePNG(path, func(c draw.Canvas) {
		p.Draw(draw.Canvas{Canvas: c.Canvas, Rectangle: plotArea})
		leg.Draw(draw.Canvas{Canvas: c.Canvas, Rectangle: legendArea})
	})
}

// savePNG draws a figure of figureW × figureH to path.
func savePNG(path string, drawFig func(draw.Canvas)) (err error) {
	c, err := draw.NewFormattedCanvas(figureW, figureH, "png")
	if err != nil {
		return err
	}
	drawFig(draw.New(c))
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer func() {
		if e := f.Close(); err == nil {
			err = e
		}
	}()
	_, err = c.WriteTo(f)
	return err
}

// PlotPareto draws HR@K against mean parameters (log axis, a labelled
// tick at every decade) for every model with parameters to path (PNG):
// each model a ring labelled with its name, rings that would hide one
// another drawn wider, labels kept apart, off the rings and inside the
// axes.
func PlotPareto(path, title string, k int, rs []Result) error {
	f := paretoPlot(title, k, rs)
	return savePNG(path, func(c draw.Canvas) {
		f.p.Draw(f.plotCanvas(c))
		sty := f.p.X.Label.TextStyle
		c.FillText(sty, vg.Point{X: c.Center().X, Y: c.Min.Y + sty.FontExtents().Descent}, f.xLabel)
	})
}

// PlotFLOPs draws HR@K against the mean MFLOP of a list's serving work
// for the models that report it (nested widths: dqn-slim and its twins),
// each a ring labelled with its name, to path (PNG). It writes nothing
// and returns false when no model reports it.
func PlotFLOPs(path, title string, k int, rs []Result) (bool, error) {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = "MFLOP per list (the forward pass and the item product at the list's width)"
	p.Y.Label.Text = fmt.Sprintf("HR@%d", k)
	p.Add(plotter.NewGrid())
	var pts paretoPoints
	for i, r := range rs {
		if r.FLOPsPerList > 0 {
			pts.add(r.Model, r.FLOPsPerList/1e6, r.HR, palette[i%len(palette)])
		}
	}
	if len(pts.names) == 0 {
		return false, nil
	}
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, q := range pts.xy {
		lo, hi = min(lo, q.X), max(hi, q.X)
	}
	pad := max((hi-lo)/5, 0.01)
	p.X.Min, p.X.Max = max(0, lo-pad), hi+pad
	p.Y.Min, p.Y.Max = paddedRange(pts.xy)
	p.Add(pts)
	return true, savePNG(path, func(c draw.Canvas) { p.Draw(c) })
}

// paretoFigure is the figure of PlotPareto: the plot, its points, and
// the x axis's label, which the figure draws below the plot itself
// (gonum/plot pads a log axis as if its label sat at the arithmetic
// middle of the range, which squeezes the data to the left).
type paretoFigure struct {
	p      *plot.Plot
	pts    paretoPoints
	xLabel string
}

// plotCanvas is the part of the figure's canvas c the plot draws in:
// all of it but a line for the x label.
func (f paretoFigure) plotCanvas(c draw.Canvas) draw.Canvas {
	sty := f.p.X.Label.TextStyle
	return draw.Crop(c, 0, 0, sty.Height(f.xLabel)+f.p.X.Label.Padding, 0)
}

// paretoPlot is the figure of PlotPareto; models without parameters,
// which a log axis cannot show, are named in the x label with their HR.
func paretoPlot(title string, k int, rs []Result) paretoFigure {
	p := plot.New()
	p.Title.Text = title
	f := paretoFigure{p: p, xLabel: "mean parameters (log)"}
	p.Y.Label.Text = fmt.Sprintf("HR@%d", k)
	p.X.Scale = plot.LogScale{}
	p.X.Tick.Marker = decadeTicks{}
	p.Add(plotter.NewGrid())
	var none []string
	for i, r := range rs {
		if r.ParamsMean > 0 {
			f.pts.add(r.Model, r.ParamsMean, r.HR, palette[i%len(palette)])
		} else {
			none = append(none, fmt.Sprintf("%s %.4f", r.Model, r.HR))
		}
	}
	if len(none) > 0 {
		f.xLabel += fmt.Sprintf("; no parameters: %s", strings.Join(none, ", "))
	}
	if len(f.pts.names) == 0 {
		p.X.Min, p.X.Max = 1, 10 // a log axis needs a positive range
		return f
	}
	p.X.Min, p.X.Max = decadeRange(f.pts.xy)
	p.Y.Min, p.Y.Max = paddedRange(f.pts.xy)
	p.Add(f.pts)
	return f
}

// paretoPoints are the models of the Pareto figure; as a plotter they
// draw themselves through paretoMarks.
type paretoPoints struct {
	names  []string
	xy     plotter.XYs
	colors []color.Color
}

func (pp *paretoPoints) add(name string, x, y float64, c color.Color) {
	pp.names = append(pp.names, name)
	pp.xy = append(pp.xy, plotter.XY{X: x, Y: y})
	pp.colors = append(pp.colors, c)
}

// Plot implements plot.Plotter.
func (pp paretoPoints) Plot(c draw.Canvas, p *plot.Plot) {
	sty := labelStyle()
	for i, m := range paretoMarks(c, p, pp) {
		c.StrokeLines(draw.LineStyle{Color: pp.colors[i], Width: vg.Points(1.5)}, c.ClipLinesXY(ring(m.At, m.Radius))...)
		sty.Color = pp.colors[i]
		c.FillText(sty, m.Label.Min, m.Name)
	}
}

// ring is a circle of radius r around at, as a polyline.
func ring(at vg.Point, r vg.Length) []vg.Point {
	const n = 32
	pts := make([]vg.Point, n+1)
	for i := range pts {
		a := 2 * math.Pi * float64(i) / n
		pts[i] = vg.Point{X: at.X + r*vg.Length(math.Cos(a)), Y: at.Y + r*vg.Length(math.Sin(a))}
	}
	return pts
}

func labelStyle() draw.TextStyle {
	sty := plot.New().X.Tick.Label
	sty.XAlign, sty.YAlign = draw.XLeft, draw.YBottom
	return sty
}

// paretoMark is where a model goes on the Pareto figure: its ring's
// centre and radius and its label's box, in canvas coordinates.
type paretoMark struct {
	Name   string
	At     vg.Point
	Radius vg.Length
	Label  vg.Rectangle
}

// markRadius is the ring of a model alone; ringStep widens the ring of a
// model whose point lies on rings drawn before it, so both stay visible.
var (
	markRadius = vg.Points(4)
	ringStep   = vg.Points(2.5)
)

// paretoMarks places every point of pp on the data canvas c of p: a
// ring as wide as needed to differ from the rings it lies on, and a label
// beside it (right, else left, moved up or down) that overlaps no ring
// and no label placed before it and stays inside c.
func paretoMarks(c draw.Canvas, p *plot.Plot, pp paretoPoints) []paretoMark {
	x, y := p.Transforms(&c)
	sty := labelStyle()
	marks := make([]paretoMark, 0, len(pp.names))
	for i, name := range pp.names {
		m := paretoMark{Name: name, At: vg.Point{X: x(pp.xy[i].X), Y: y(pp.xy[i].Y)}, Radius: markRadius}
		for _, o := range marks {
			if dist(o.At, m.At) < o.Radius+markRadius && m.Radius <= o.Radius+ringStep/2 {
				m.Radius = o.Radius + ringStep
			}
		}
		marks = append(marks, m)
	}
	var taken []vg.Rectangle
	for _, m := range marks {
		taken = append(taken, m.ring())
	}
	for i := range marks {
		marks[i].Label = placeLabel(c.Rectangle, marks[i], sty.Rectangle(marks[i].Name).Size(), taken)
		taken = append(taken, marks[i].Label)
	}
	return marks
}

// ring is the box of m's ring.
func (m paretoMark) ring() vg.Rectangle {
	r := m.Radius + vg.Points(1)
	return vg.Rectangle{Min: vg.Point{X: m.At.X - r, Y: m.At.Y - r}, Max: vg.Point{X: m.At.X + r, Y: m.At.Y + r}}
}

// placeLabel is a box of size sz beside m, inside area, overlapping none
// of taken; the first candidate if none fits.
func placeLabel(area vg.Rectangle, m paretoMark, sz vg.Point, taken []vg.Rectangle) vg.Rectangle {
	gap := m.Radius + vg.Points(3)
	var first vg.Rectangle
	for step := range 60 {
		dy := vg.Length((step+1)/2) * (sz.Y / 2)
		if step%2 == 1 {
			dy = -dy
		}
		for _, minX := range []vg.Length{m.At.X + gap, m.At.X - gap - sz.X} {
			lo := vg.Point{X: minX, Y: m.At.Y - sz.Y/2 + dy}
			r := vg.Rectangle{Min: lo, Max: lo.Add(sz)}
			if step == 0 && first == (vg.Rectangle{}) {
				first = r
			}
			if inside(r, area) && !overlapsAny(r, taken) {
				return r
			}
		}
	}
	return first
}

func overlapsAny(r vg.Rectangle, taken []vg.Rectangle) bool {
	for _, o := range taken {
		if overlaps(r, o) {
			return true
		}
	}
	return false
}

// overlaps reports whether a and b share more than an edge.
func overlaps(a, b vg.Rectangle) bool {
	return a.Min.X < b.Max.X && b.Min.X < a.Max.X && a.Min.Y < b.Max.Y && b.Min.Y < a.Max.Y
}

// inside reports whether r lies within area.
func inside(r, area vg.Rectangle) bool {
	return r.Min.X >= area.Min.X && r.Min.Y >= area.Min.Y && r.Max.X <= area.Max.X && r.Max.Y <= area.Max.Y
}

func dist(a, b vg.Point) vg.Length {
	return vg.Length(math.Hypot(float64(a.X-b.X), float64(a.Y-b.Y)))
}

// decadeRange is the x range of the Pareto figure: from the decade below
// the smallest x (with room for its ring) to the decade above the largest,
// so the axis shows at least two labelled decades.
func decadeRange(xy plotter.XYs) (lo, hi float64) {
	lo, hi = math.Inf(1), math.Inf(-1)
	for _, p := range xy {
		lo, hi = min(lo, p.X), max(hi, p.X)
	}
	return math.Pow(10, math.Floor(math.Log10(lo/1.5))), math.Pow(10, math.Ceil(math.Log10(hi*1.5)))
}

// paddedRange is the y range of the Pareto figure: the points' with a
// fifth of their span (at least 0.01) of room on each side for rings and
// labels.
func paddedRange(xy plotter.XYs) (lo, hi float64) {
	lo, hi = math.Inf(1), math.Inf(-1)
	for _, p := range xy {
		lo, hi = min(lo, p.Y), max(hi, p.Y)
	}
	pad := max((hi-lo)/5, 0.01)
	return max(0, lo-pad), hi + pad
}

// decadeTicks marks a log axis: a labelled tick at every power of ten in
// range (1, 10, 100, 1k, 10k, 100k, 1M, ...), unlabelled ones between.
type decadeTicks struct{}

// Ticks implements plot.Ticker.
func (decadeTicks) Ticks(lo, hi float64) []plot.Tick {
	var ticks []plot.Tick
	for e := math.Floor(math.Log10(lo)); e <= math.Ceil(math.Log10(hi)); e++ {
		d := math.Pow(10, e)
		for i := 1; i < 10; i++ {
			v := float64(i) * d
			if v < lo*(1-1e-9) || v > hi*(1+1e-9) {
				continue
			}
			t := plot.Tick{Value: v}
			if i == 1 {
				t.Label = decadeLabel(v)
			}
			ticks = append(ticks, t)
		}
	}
	return ticks
}

// decadeLabel writes a power of ten with an SI suffix: 1k, 10k, 1M.
func decadeLabel(v float64) string {
	e := int(math.Round(math.Log10(v)))
	switch {
	case e < 0:
		return fmt.Sprintf("%g", v)
	case e < 3:
		return fmt.Sprintf("%.0f", v)
	case e < 6:
		return fmt.Sprintf("%.0fk", v/1e3)
	case e < 9:
		return fmt.Sprintf("%.0fM", v/1e6)
	}
	return fmt.Sprintf("%.0fG", v/1e9)
}
