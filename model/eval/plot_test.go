package eval

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

func curveResults() []Result {
	var rs []Result
	for _, name := range []string{"popularity", "itemknn", "sr", "sknn", "dqn", "dqn-myopic", "adaptive-rl", "a-long-model-name"} {
		rs = append(rs, Result{Model: name, Curve: []Point{{Events: 0, Value: 0.3}, {Events: 1000, Value: 0.1}, {Events: 5000, Value: 0.35}}})
	}
	return rs
}

// curve.png's legend lies beside the data area, never over it: the plot
// draws no legend of its own, and the legend's column, as wide and as
// tall as its entries, starts right of the data area and fits the figure.
func TestCurveLegendOutsideTheData(t *testing.T) {
	rs := curveResults()
	p, leg, err := curvePlot("t", 10, 2000, rs)
	if err != nil {
		t.Fatal(err)
	}
	if r := p.Legend.Rectangle(draw.Canvas{}); r.Size().X != 0 || r.Size().Y != 0 {
		t.Fatalf("the plot draws a legend of its own over the data: %v", r)
	}
	plotArea, legendArea := besideLayout(leg, figureW, figureH)
	data := p.DataCanvas(draw.Canvas{Rectangle: plotArea}).Rectangle
	size := leg.Rectangle(draw.Canvas{}).Size()
	if size.Y < vg.Length(len(rs))*leg.TextStyle.Rectangle("x").Max.Y {
		t.Fatalf("legend %v holds fewer than the %d models", size, len(rs))
	}
	// Drawn Top and Left, the legend fills its column from the top-left corner.
	box := vg.Rectangle{Min: vg.Point{X: legendArea.Min.X, Y: legendArea.Max.Y - size.Y}, Max: vg.Point{X: legendArea.Min.X + size.X, Y: legendArea.Max.Y}}
	if overlaps(box, data) || box.Min.X < data.Max.X {
		t.Fatalf("legend %v over the data area %v", box, data)
	}
	if !inside(box, vg.Rectangle{Max: vg.Point{X: figureW, Y: figureH}}) {
		t.Fatalf("legend %v off the %v × %v figure", box, figureW, figureH)
	}
	if data.Size().X < figureW/2 {
		t.Fatalf("data area %v: the legend took most of the figure", data)
	}
	path := filepath.Join(t.TempDir(), "curve.png")
	if err := PlotCurves(path, "t", 10, 2000, rs); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(path); err != nil || st.Size() < 1000 {
		t.Fatalf("curve.png: %v", err)
	}
}

func paretoResults() []Result {
	return []Result{
		{Model: "popularity", HR: 0.05},
		{Model: "itemknn", HR: 0.117, ParamsMean: 3_000},
		{Model: "dqn", HR: 0.139, ParamsMean: 650_000},
		{Model: "dqn-myopic", HR: 0.139, ParamsMean: 650_000}, // on dqn's point
		{Model: "dqn-nonet", HR: 0.1385, ParamsMean: 640_000},
		{Model: "dqn-large", HR: 0.14, ParamsMean: 1_400_000},
		{Model: "adaptive-rl", HR: 0.13, ParamsMean: 700_000},
	}
}

// pareto.png's log axis has a labelled tick at every decade in range
// (1k, 10k, 100k, 1M, 10M here), and the range spans the points.
func TestParetoDecadeTicks(t *testing.T) {
	p := paretoPlot("t", 10, paretoResults()).p
	if p.X.Min > 3_000 || p.X.Max < 1_400_000 {
		t.Fatalf("x range [%g, %g] cuts points", p.X.Min, p.X.Max)
	}
	labels := map[float64]string{}
	for _, tk := range p.X.Tick.Marker.Ticks(p.X.Min, p.X.Max) {
		if tk.Label != "" {
			labels[tk.Value] = tk.Label
		}
	}
	want := map[float64]string{1e3: "1k", 1e4: "10k", 1e5: "100k", 1e6: "1M", 1e7: "10M"}
	if len(labels) != len(want) {
		t.Fatalf("labelled ticks %v, want %v", labels, want)
	}
	for v, l := range want {
		if labels[v] != l {
			t.Fatalf("tick at %g labelled %q, want %q (all: %v)", v, labels[v], l, labels)
		}
	}
	if got := (decadeTicks{}).Ticks(20, 900); len(got) == 0 || got[len(got)-1].Value != 900 || got[0].Label != "" {
		t.Fatalf("ticks in [20, 900]: %v", got)
	}
	for v, l := range map[float64]string{1: "1", 100: "100", 1e8: "100M", 1e9: "1G", 0.1: "0.1"} {
		if got := decadeLabel(v); got != l {
			t.Errorf("decadeLabel(%g) = %q, want %q", v, got, l)
		}
	}
}

// Every model with parameters is a ring inside the axes with its label
// inside them too; no two labels overlap; a ring on the same spot as an
// earlier one is drawn wider, so none hides another; a model without
// parameters is named on the axis.
func TestParetoEveryModelVisible(t *testing.T) {
	rs := paretoResults()
	f := paretoPlot("t", 10, rs)
	p := f.p
	data := p.DataCanvas(f.plotCanvas(draw.Canvas{Rectangle: vg.Rectangle{Max: vg.Point{X: figureW, Y: figureH}}}))
	if data.Size().X < figureW*3/4 {
		t.Fatalf("data area %v: squeezed", data)
	}
	marks := paretoMarks(data, p, f.pts)
	if len(marks) != len(rs)-1 {
		t.Fatalf("%d marks for %d models with parameters", len(marks), len(rs)-1)
	}
	for i, m := range marks {
		ringBox := vg.Rectangle{Min: vg.Point{X: m.At.X - m.Radius, Y: m.At.Y - m.Radius}, Max: vg.Point{X: m.At.X + m.Radius, Y: m.At.Y + m.Radius}}
		if m.Name != rs[i+1].Model || !inside(ringBox, data.Rectangle) || !inside(m.Label, data.Rectangle) || m.Label.Size().X <= 0 {
			t.Fatalf("%s: ring %v, label %v outside the axes %v", m.Name, ringBox, m.Label, data.Rectangle)
		}
		for _, o := range marks[:i] {
			if overlaps(m.Label, o.Label) {
				t.Fatalf("labels of %s %v and %s %v overlap", m.Name, m.Label, o.Name, o.Label)
			}
			if overlaps(m.Label, o.ring()) || overlaps(o.Label, m.ring()) {
				t.Fatalf("the label of %s or %s covers the other's ring", m.Name, o.Name)
			}
			if dist(m.At, o.At) < vg.Points(1) && abs(m.Radius-o.Radius) < vg.Points(2) {
				t.Fatalf("%s hides %s: rings at %v, radii %v and %v", m.Name, o.Name, m.At, m.Radius, o.Radius)
			}
		}
	}
	lo, hi := marks[0].At.Y, marks[0].At.Y
	for _, m := range marks {
		lo, hi = min(lo, m.At.Y), max(hi, m.At.Y)
	}
	if hi-lo < data.Size().Y/2 {
		t.Fatalf("the points span %v of the axes' %v: the y range is not theirs", hi-lo, data.Size().Y)
	}
	if want := "no parameters: popularity 0.0500"; !strings.Contains(f.xLabel, want) {
		t.Fatalf("x label %q lacks %q", f.xLabel, want)
	}
	path := filepath.Join(t.TempDir(), "pareto.png")
	if err := PlotPareto(path, "t", 10, rs); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(path); err != nil || st.Size() < 1000 {
		t.Fatalf("pareto.png: %v", err)
	}
}

func abs(x vg.Length) vg.Length { return max(x, -x) }

// pareto-flops.png places the models that report serving FLOPs and is not
// written when none does.
func TestPlotFLOPs(t *testing.T) {
	path := filepath.Join(t.TempDir(), "pareto-flops.png")
	rs := []Result{{Model: "pop", HR: 0.05}, {Model: "dqn", HR: 0.15, ParamsMean: 1e5}}
	if wrote, err := PlotFLOPs(path, "t", 10, rs); err != nil || wrote {
		t.Fatalf("no model reports FLOPs: wrote %v, %v", wrote, err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("a file was written: %v", err)
	}
	rs = append(rs, Result{Model: "dqn-slim", HR: 0.15, FLOPsPerList: 3e5}, Result{Model: "dqn-slim-full", HR: 0.16, FLOPsPerList: 6e5})
	if wrote, err := PlotFLOPs(path, "t", 10, rs); err != nil || !wrote {
		t.Fatalf("wrote %v, %v", wrote, err)
	}
	if st, err := os.Stat(path); err != nil || st.Size() < 1000 {
		t.Fatalf("pareto-flops.png: %v", err)
	}
}
