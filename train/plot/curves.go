package plot

import (
	"errors"
	"fmt"
	"image"
	"image/color"
	"io"
	"math"
	"strconv"

	gplot "gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// Series colours: training blue, validation orange, the rest after them
// (matplotlib's default cycle, which the Keras tutorial's figures use).
var seriesColors = []color.RGBA{
	{31, 119, 180, 255},
	{255, 127, 14, 255},
	{44, 160, 44, 255},
	{214, 39, 40, 255},
	{148, 103, 189, 255},
	{140, 86, 75, 255},
}

// Series is one named curve of a panel: Values[i] belongs to the history's
// row i (plotted at that row's epoch number). NaN and infinite values are
// left out.
type Series struct {
	// Name is the legend entry.
	Name string
	// Values holds one value per history row.
	Values []float64
	// Points marks each value with a dot as well as the line.
	Points bool
}

// Panel is one chart of the training-curves figure.
type Panel struct {
	// Title is drawn above the panel.
	Title string
	// YLabel names the vertical axis; the horizontal one is "Epoch".
	YLabel string
	// Series are the curves, drawn in order.
	Series []Series
	// LogY draws the vertical axis on a log scale when every value is
	// positive.
	LogY bool
}

// CurvesOptions configures the training-curves figure. The zero value draws
// the loss and accuracy panels side by side, 640x480 pixels each, at 96 DPI.
type CurvesOptions struct {
	// LearningRate adds a panel with the learning rate per epoch (log
	// scale when it spans a factor of 10 or more).
	LearningRate bool
	// Extra panels are drawn after the standard ones, for instance a
	// validation F1 per epoch.
	Extra []Panel
	// PanelWidth and PanelHeight are the size of each panel in pixels
	// (default 640x480; at least 64, and the whole figure at most 8192
	// pixels wide and high).
	PanelWidth, PanelHeight int
	// DPI sets the size of text and lines relative to pixels (default 96).
	DPI int
}

// LossPanel returns the "Training and validation loss" panel.
func LossPanel(h History) Panel {
	return Panel{
		Title:  "Training and validation loss",
		YLabel: "Loss",
		Series: []Series{
			{Name: "Training loss", Values: column(h, func(e Epoch) float64 { return e.TrainLoss }), Points: true},
			{Name: "Validation loss", Values: column(h, func(e Epoch) float64 { return e.ValLoss })},
		},
	}
}

// AccuracyPanel returns the "Training and validation accuracy" panel.
func AccuracyPanel(h History) Panel {
	return Panel{
		Title:  "Training and validation accuracy",
		YLabel: "Accuracy",
		Series: []Series{
			{Name: "Training accuracy", Values: column(h, func(e Epoch) float64 { return e.TrainAcc }), Points: true},
			{Name: "Validation accuracy", Values: column(h, func(e Epoch) float64 { return e.ValAcc })},
		},
	}
}

// LearningRatePanel returns the "Learning rate" panel.
func LearningRatePanel(h History) Panel {
	return Panel{
		Title:  "Learning rate",
		YLabel: "Learning rate",
		LogY:   true,
		Series: []Series{
			{Name: "Learning rate", Values: column(h, func(e Epoch) float64 { return e.LR }), Points: true},
		},
	}
}

func column(h History, f func(Epoch) float64) []float64 {
	out := make([]float64, len(h.Epochs))
	for i, e := range h.Epochs {
		out[i] = f(e)
	}
	return out
}

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

// PanelPlot builds the gonum plot of one panel over the history's epochs.
// A panel without any finite value is drawn empty with "(no data)" in its
// title.
func PanelPlot(h History, pn Panel) (*gplot.Plot, error) {
	if len(h.Epochs) == 0 {
		return nil, fmt.Errorf("plot %q: %w", pn.Title, ErrEmptyHistory)
	}
	p := gplot.New()
	p.Title.Text = pn.Title
	p.X.Label.Text = "Epoch"
	p.Y.Label.Text = pn.YLabel
	p.Title.Padding = vg.Points(6)
	p.X.Tick.Marker = integerTicks{}
	p.Add(plotter.NewGrid())

	xmin, xmax := math.Inf(1), math.Inf(-1)
	for _, e := range h.Epochs {
		xmin = math.Min(xmin, float64(e.Epoch))
		xmax = math.Max(xmax, float64(e.Epoch))
	}
	ymin, ymax := math.Inf(1), math.Inf(-1)
	allPositive := true
	for si, s := range pn.Series {
		if len(s.Values) != len(h.Epochs) {
			return nil, fmt.Errorf("plot %q: series %q has %d values for %d epochs", pn.Title, s.Name, len(s.Values), len(h.Epochs))
		}
		var xys plotter.XYs
		for i, v := range s.Values {
			if !finite(v) {
				continue
			}
			xys = append(xys, plotter.XY{X: float64(h.Epochs[i].Epoch), Y: v})
			ymin, ymax = math.Min(ymin, v), math.Max(ymax, v)
			if v <= 0 {
				allPositive = false
			}
		}
		if len(xys) == 0 {
			continue
		}
		col := seriesColors[si%len(seriesColors)]
		line, err := plotter.NewLine(xys)
		if err != nil {
			return nil, fmt.Errorf("plot %q: series %q: %w", pn.Title, s.Name, err)
		}
		line.Color = col
		line.Width = vg.Points(1.5)
		thumbs := []gplot.Thumbnailer{line}
		p.Add(line)
		if s.Points || len(xys) == 1 {
			sc, err := plotter.NewScatter(xys)
			if err != nil {
				return nil, fmt.Errorf("plot %q: series %q: %w", pn.Title, s.Name, err)
			}
			sc.GlyphStyle.Color = col
			sc.GlyphStyle.Shape = draw.CircleGlyph{}
			sc.GlyphStyle.Radius = vg.Points(3)
			p.Add(sc)
			thumbs = append(thumbs, sc)
		}
		p.Legend.Add(s.Name, thumbs...)
	}
	if xmin == xmax {
		xmin, xmax = xmin-1, xmax+1
	}
	p.X.Min, p.X.Max = xmin, xmax
	switch {
	case math.IsInf(ymin, 1):
		p.Title.Text += " (no data)"
		p.Y.Min, p.Y.Max = 0, 1
	case pn.LogY && allPositive && ymax/ymin >= 10:
		p.Y.Scale = gplot.LogScale{}
		p.Y.Tick.Marker = gplot.LogTicks{Prec: -1}
		p.Y.Min, p.Y.Max = ymin/1.25, ymax*1.25
	default:
		pad := (ymax - ymin) * 0.05
		if pad == 0 {
			pad = math.Max(math.Abs(ymax)*0.05, 0.05)
		}
		p.Y.Min, p.Y.Max = ymin-pad, ymax+pad
	}
	placeLegend(p, h, pn)
	return p, nil
}

// Legend placement, in fractions of the data area: the box a legend of n
// entries covers from its corner, and the inset from the axes.
const (
	legendWidth       = 0.48
	legendEntryHeight = 0.085
	legendMargin      = 0.04
)

// placeLegend puts the legend in a corner of the data area that no curve
// crosses (top right, top left, bottom right, bottom left, in that order
// of preference); when every corner is crossed it raises the top of the
// vertical axis until the top right corner is free. It is never drawn over
// the title, which sits above the data area.
func placeLegend(p *gplot.Plot, h History, pn Panel) {
	entries := 0
	for _, s := range pn.Series {
		for _, v := range s.Values {
			if finite(v) {
				entries++
				break
			}
		}
	}
	if entries == 0 {
		return
	}
	boxH := legendMargin + legendEntryHeight*float64(entries)
	_, isLog := p.Y.Scale.(gplot.LogScale)
	norm := func(v float64) float64 { return (v - p.Y.Min) / (p.Y.Max - p.Y.Min) }
	if isLog {
		lo, hi := math.Log(p.Y.Min), math.Log(p.Y.Max)
		norm = func(v float64) float64 { return (math.Log(v) - lo) / (hi - lo) }
	}
	// Normalised positions of the curves: every point, and 15 samples on
	// each segment between consecutive points.
	type pt struct{ x, y float64 }
	var samples []pt
	for _, s := range pn.Series {
		havePrev := false
		var prev pt
		for i, v := range s.Values {
			if !finite(v) {
				havePrev = false
				continue
			}
			cur := pt{(float64(h.Epochs[i].Epoch) - p.X.Min) / (p.X.Max - p.X.Min), norm(v)}
			if havePrev {
				for k := 1; k < 16; k++ {
					f := float64(k) / 16
					samples = append(samples, pt{prev.x + f*(cur.x-prev.x), prev.y + f*(cur.y-prev.y)})
				}
			}
			samples = append(samples, cur)
			prev, havePrev = cur, true
		}
	}
	free := func(top, left bool) bool {
		for _, q := range samples {
			inX := q.x >= 1-legendWidth-legendMargin
			if left {
				inX = q.x <= legendWidth+legendMargin
			}
			inY := q.y <= boxH+legendMargin
			if top {
				inY = q.y >= 1-boxH-legendMargin
			}
			if inX && inY {
				return false
			}
		}
		return true
	}
	top, left, found := true, false, false
	for _, c := range [][2]bool{{true, false}, {true, true}, {false, false}, {false, true}} {
		if free(c[0], c[1]) {
			top, left, found = c[0], c[1], true
			break
		}
	}
	if !found {
		// Raise the top so that every curve stays below the legend's box.
		raise := 1 / (1 - boxH - 2*legendMargin)
		if isLog {
			p.Y.Max = p.Y.Min * math.Pow(p.Y.Max/p.Y.Min, raise)
		} else {
			p.Y.Max = p.Y.Min + (p.Y.Max-p.Y.Min)*raise
		}
	}
	p.Legend.Top, p.Legend.Left = top, left
	inset := vg.Points(6)
	p.Legend.XOffs, p.Legend.YOffs = -inset, -inset
	if left {
		p.Legend.XOffs = inset
	}
	if !top {
		p.Legend.YOffs = inset
	}
}

// integerTicks labels whole epochs only, with a step of 1, 2, 5, 10, 20...
// chosen for at most about ten labels.
type integerTicks struct{}

func (integerTicks) Ticks(lo, hi float64) []gplot.Tick {
	span := hi - lo
	step := 1.0
	for mag := 1.0; ; mag *= 10 {
		found := false
		for _, m := range []float64{1, 2, 5} {
			if span/(m*mag) <= 10 {
				step = m * mag
				found = true
				break
			}
		}
		if found || mag > 1e12 {
			break
		}
	}
	var ticks []gplot.Tick
	for v := math.Ceil(lo/step) * step; v <= hi+1e-9; v += step {
		ticks = append(ticks, gplot.Tick{Value: v, Label: strconv.FormatFloat(v, 'f', 0, 64)})
	}
	return ticks
}

// CurvesPanels returns the panels that Curves draws for these options.
func CurvesPanels(h History, opts CurvesOptions) []Panel {
	panels := []Panel{LossPanel(h), AccuracyPanel(h)}
	if opts.LearningRate {
		panels = append(panels, LearningRatePanel(h))
	}
	return append(panels, opts.Extra...)
}

// Curves draws the training-curves figure: the loss panel and the accuracy
// panel side by side (training as dots and line, validation as a line), then
// the learning-rate panel and any extra panels. With more than three panels
// they are laid out two per row.
func Curves(h History, opts CurvesOptions) (image.Image, error) {
	if len(h.Epochs) == 0 {
		return nil, fmt.Errorf("training curves: %w", ErrEmptyHistory)
	}
	pw, ph, dpi, err := canvasSize(opts.PanelWidth, opts.PanelHeight, opts.DPI, 640, 480)
	if err != nil {
		return nil, fmt.Errorf("training curves: %w", err)
	}
	panels := CurvesPanels(h, opts)
	cols := len(panels)
	if cols > 3 {
		cols = 2
	}
	rows := (len(panels) + cols - 1) / cols
	if pw*cols > maxPixels || ph*rows > maxPixels {
		return nil, fmt.Errorf("training curves: figure of %dx%d pixels is larger than %d", pw*cols, ph*rows, maxPixels)
	}
	grid := make([][]*gplot.Plot, rows)
	for r := range grid {
		grid[r] = make([]*gplot.Plot, cols)
	}
	for i, pn := range panels {
		p, err := PanelPlot(h, pn)
		if err != nil {
			return nil, fmt.Errorf("training curves: %w", err)
		}
		grid[i/cols][i%cols] = p
	}
	return render(pw*cols, ph*rows, dpi, func(dc draw.Canvas) {
		tiles := draw.Tiles{Rows: rows, Cols: cols, PadX: vg.Points(12), PadY: vg.Points(12),
			PadTop: vg.Points(6), PadBottom: vg.Points(6), PadLeft: vg.Points(6), PadRight: vg.Points(6)}
		canvases := gplot.Align(grid, tiles, dc)
		for r := range grid {
			for c, p := range grid[r] {
				if p != nil {
					p.Draw(canvases[r][c])
				}
			}
		}
	})
}

// WriteCurvesPNG draws Curves and writes it as PNG.
func WriteCurvesPNG(w io.Writer, h History, opts CurvesOptions) error {
	img, err := Curves(h, opts)
	if err != nil {
		return err
	}
	return encodePNG(w, img, "training curves")
}

// SaveCurvesPNG draws Curves into a PNG file.
func SaveCurvesPNG(path string, h History, opts CurvesOptions) error {
	return saveFile(path, func(w io.Writer) error { return WriteCurvesPNG(w, h, opts) })
}

// SavePlotPNG writes any gonum plot, such as one from PanelPlot, to a PNG
// file of width x height pixels at dpi (0 means 96). It is the way to get
// the loss and accuracy figures as two separate files.
func SavePlotPNG(path string, p *gplot.Plot, width, height, dpi int) error {
	if p == nil {
		return errors.New("save plot: nil plot")
	}
	w, h, d, err := canvasSize(width, height, dpi, 640, 480)
	if err != nil {
		return fmt.Errorf("save plot %s: %w", path, err)
	}
	img, err := render(w, h, d, p.Draw)
	if err != nil {
		return fmt.Errorf("save plot %s: %w", path, err)
	}
	return saveFile(path, func(wr io.Writer) error { return encodePNG(wr, img, "plot") })
}
