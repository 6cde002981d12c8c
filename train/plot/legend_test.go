package plot

import (
	"image"
	"image/color"
	"math"
	"testing"

	gplot "gonum.org/v1/plot"
)

// diffBox is the bounding box of the pixels where a and b differ (empty
// when they are the same).
func diffBox(a, b image.Image) image.Rectangle {
	var box image.Rectangle
	r := a.Bounds()
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			if a.At(x, y) != b.At(x, y) {
				box = box.Union(image.Rect(x, y, x+1, y+1))
			}
		}
	}
	return box
}

// isSeriesColor reports whether c is close to one of the curve colours.
func isSeriesColor(c color.Color) bool {
	r, g, b, _ := c.RGBA()
	for _, s := range seriesColors {
		d := math.Abs(float64(r>>8)-float64(s.R)) + math.Abs(float64(g>>8)-float64(s.G)) + math.Abs(float64(b>>8)-float64(s.B))
		if d < 60 {
			return true
		}
	}
	return false
}

// TestLegendCoversNoCurveAndNoTitle draws panels whose curves fill
// different corners and checks, on the pixels, that the legend overlaps
// neither the title nor any curve.
func TestLegendCoversNoCurveAndNoTitle(t *testing.T) {
	hist := func(train, valid []float64) History {
		var h History
		for i := range train {
			h.Epochs = append(h.Epochs, Epoch{Epoch: i + 1, TrainLoss: train[i], ValLoss: valid[i], TrainAcc: 1 - train[i]/3, ValAcc: 1 - valid[i]/3, LR: 1e-3 / float64(i+1)})
		}
		return h
	}
	cases := map[string]History{
		"falling":        hist([]float64{2.7, 2.1, 1.8, 1.6, 1.5, 1.45}, []float64{2.5, 2.2, 2.0, 1.9, 1.95, 2.0}),
		"rising at end":  hist([]float64{2.7, 2.1, 1.8, 1.6, 1.5, 2.7}, []float64{2.5, 2.2, 2.0, 1.9, 1.95, 2.6}),
		"every corner":   hist([]float64{2.7, 1.0, 2.7, 1.0, 2.7, 1.0}, []float64{1.0, 2.7, 1.0, 2.7, 1.0, 2.7}),
		"one epoch":      hist([]float64{2.0}, []float64{1.9}),
		"flat and noisy": hist([]float64{1.5, 1.51, 1.49, 1.5, 1.52, 1.48}, []float64{1.6, 1.4, 1.6, 1.4, 1.6, 1.4}),
	}
	for name, h := range cases {
		for _, pn := range []Panel{LossPanel(h), AccuracyPanel(h), LearningRatePanel(h)} {
			draw := func(edit func(p *gplot.Plot)) image.Image {
				p, err := PanelPlot(h, pn)
				if err != nil {
					t.Fatal(err)
				}
				edit(p)
				img, err := render(640, 480, 96, p.Draw)
				if err != nil {
					t.Fatal(err)
				}
				return img
			}
			full := draw(func(*gplot.Plot) {})
			noLegend := draw(func(p *gplot.Plot) {
				keep := p.Legend
				p.Legend = gplot.NewLegend()
				p.Legend.Top, p.Legend.Left, p.Legend.XOffs, p.Legend.YOffs = keep.Top, keep.Left, keep.XOffs, keep.YOffs
			})
			noTitle := draw(func(p *gplot.Plot) { p.Title.TextStyle.Color = color.White })
			legend := diffBox(full, noLegend)
			title := diffBox(full, noTitle)
			if legend.Empty() || title.Empty() {
				t.Fatalf("%s / %s: legend %v, title %v not found in the picture", name, pn.Title, legend, title)
			}
			if legend.Overlaps(title.Inset(-2)) {
				t.Errorf("%s / %s: the legend %v overlaps the title %v", name, pn.Title, legend, title)
			}
			box := legend.Inset(-2)
			crossed := 0
			for y := box.Min.Y; y < box.Max.Y; y++ {
				for x := box.Min.X; x < box.Max.X; x++ {
					if isSeriesColor(noLegend.At(x, y)) {
						crossed++
					}
				}
			}
			if crossed > 0 {
				t.Errorf("%s / %s: %d curve pixels under the legend %v", name, pn.Title, crossed, legend)
			}
		}
	}
}
