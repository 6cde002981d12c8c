package plot

import (
	"fmt"
	"image"
	"image/color"
	"io"
	"math"
	"strconv"

	gplot "gonum.org/v1/plot"
	"gonum.org/v1/plot/font"
	"gonum.org/v1/plot/text"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// ConfusionOptions configures the confusion-matrix heat map. The zero value
// draws a square picture sized for the number of classes at 96 DPI, with
// counts in the cells.
type ConfusionOptions struct {
	// Title is drawn above the matrix (default "Confusion matrix").
	Title string
	// Size is the width and height in pixels (default 160 + 70 per class,
	// at least 480; between 64 and 8192).
	Size int
	// DPI sets the size of text relative to pixels (default 96).
	DPI int
	// Percent adds each cell's share of its row, in percent, under the
	// count.
	Percent bool
}

// blues is the colour ramp of the heat map, from a share of 0 (almost
// white) to 1 (dark blue), like matplotlib's "Blues".
var blues = []color.RGBA{
	{247, 251, 255, 255},
	{198, 219, 239, 255},
	{107, 174, 214, 255},
	{33, 113, 181, 255},
	{8, 48, 107, 255},
}

// CellColor returns the heat-map colour of a row-normalised share in [0, 1]
// (values outside are clamped; NaN counts as 0).
func CellColor(share float64) color.RGBA {
	if !(share > 0) {
		share = 0
	}
	share = math.Min(share, 1)
	pos := share * float64(len(blues)-1)
	i := int(pos)
	if i >= len(blues)-1 {
		return blues[len(blues)-1]
	}
	f := pos - float64(i)
	a, b := blues[i], blues[i+1]
	mix := func(x, y uint8) uint8 { return uint8(math.Round(float64(x) + f*(float64(y)-float64(x)))) }
	return color.RGBA{mix(a.R, b.R), mix(a.G, b.G), mix(a.B, b.B), 255}
}

// RowShares returns the confusion matrix normalised by row: each cell
// divided by its row's total (the true class's support), 0 for rows
// without samples.
func RowShares(cm [][]int) [][]float64 {
	out := make([][]float64, len(cm))
	for i, row := range cm {
		out[i] = make([]float64, len(row))
		total := 0
		for _, v := range row {
			total += v
		}
		if total == 0 {
			continue
		}
		for j, v := range row {
			out[i][j] = float64(v) / float64(total)
		}
	}
	return out
}

func checkConfusion(cm [][]int, classes []string) error {
	n := len(classes)
	if n == 0 {
		return fmt.Errorf("no classes")
	}
	if len(cm) != n {
		return fmt.Errorf("matrix has %d rows for %d classes", len(cm), n)
	}
	for i, row := range cm {
		if len(row) != n {
			return fmt.Errorf("matrix row %d has %d columns for %d classes", i, len(row), n)
		}
		for j, v := range row {
			if v < 0 {
				return fmt.Errorf("matrix cell (%d, %d) is negative (%d)", i, j, v)
			}
		}
	}
	return nil
}

// ConfusionPlot builds the heat map of a confusion matrix (rows true classes,
// columns predicted ones, as train/metrics produces it): true classes down
// the vertical axis with the first at the top, predicted classes along the
// horizontal axis, each cell coloured by its share of the row and labelled
// with its count.
func ConfusionPlot(cm [][]int, classes []string, opts ConfusionOptions) (*gplot.Plot, error) {
	if err := checkConfusion(cm, classes); err != nil {
		return nil, fmt.Errorf("confusion plot: %w", err)
	}
	n := len(classes)
	p := gplot.New()
	p.Title.Text = opts.Title
	if p.Title.Text == "" {
		p.Title.Text = "Confusion matrix"
	}
	p.Title.Text += " (colour: share of true class)"
	p.X.Label.Text = "Predicted"
	p.Y.Label.Text = "True"
	p.X.Padding, p.Y.Padding = 0, 0
	p.X.Min, p.X.Max = -0.5, float64(n)-0.5
	p.Y.Min, p.Y.Max = -0.5, float64(n)-0.5
	var xt, yt []gplot.Tick
	for i, name := range classes {
		xt = append(xt, gplot.Tick{Value: float64(i), Label: name})
		yt = append(yt, gplot.Tick{Value: float64(n - 1 - i), Label: name})
	}
	p.X.Tick.Marker = gplot.ConstantTicks(xt)
	p.Y.Tick.Marker = gplot.ConstantTicks(yt)
	p.X.Tick.Label.Rotation = math.Pi / 4
	p.X.Tick.Label.XAlign = draw.XRight
	p.X.Tick.Label.YAlign = draw.YTop
	p.Add(&cells{cm: cm, shares: RowShares(cm), percent: opts.Percent, handler: p.TextHandler})
	return p, nil
}

// cells draws the heat-map cells and their labels.
type cells struct {
	cm      [][]int
	shares  [][]float64
	percent bool
	handler text.Handler
}

// DataRange implements plot.DataRanger.
func (c *cells) DataRange() (xmin, xmax, ymin, ymax float64) {
	n := float64(len(c.cm))
	return -0.5, n - 0.5, -0.5, n - 0.5
}

// Plot implements plot.Plotter.
func (c *cells) Plot(dc draw.Canvas, p *gplot.Plot) {
	n := len(c.cm)
	trX, trY := p.Transforms(&dc)
	cellW := trX(0.5) - trX(-0.5)
	cellH := trY(0.5) - trY(-0.5)
	size := vg.Length(math.Min(float64(min(cellW, cellH))*0.28, 14))
	if c.percent {
		size *= 0.8
	}
	size = max(size, vg.Points(5))
	for i := range n {
		y := float64(n - 1 - i)
		for j := range n {
			x := float64(j)
			share := c.shares[i][j]
			rect := vg.Rectangle{
				Min: vg.Point{X: trX(x - 0.5), Y: trY(y - 0.5)},
				Max: vg.Point{X: trX(x + 0.5), Y: trY(y + 0.5)},
			}
			dc.SetColor(CellColor(share))
			dc.Fill(rect.Path())
			label := strconv.Itoa(c.cm[i][j])
			if c.percent {
				label += "\n" + strconv.FormatFloat(100*share, 'f', 1, 64) + "%"
			}
			sty := text.Style{
				Color:   color.Black,
				Font:    font.From(gplot.DefaultFont, size),
				XAlign:  draw.XCenter,
				YAlign:  draw.YCenter,
				Handler: c.handler,
			}
			if share > 0.5 {
				sty.Color = color.White
			}
			dc.FillText(sty, vg.Point{X: trX(x), Y: trY(y)}, label)
		}
	}
	// Thin grid lines between cells.
	ls := draw.LineStyle{Color: color.RGBA{255, 255, 255, 255}, Width: vg.Points(0.75)}
	for k := 1; k < n; k++ {
		v := float64(k) - 0.5
		dc.StrokeLine2(ls, trX(v), trY(-0.5), trX(v), trY(float64(n)-0.5))
		dc.StrokeLine2(ls, trX(-0.5), trY(v), trX(float64(n)-0.5), trY(v))
	}
}

// confusionCanvas leaves a margin on the right and at the top so that the
// last column and the title do not touch the picture's edge.
func confusionCanvas(dc draw.Canvas) draw.Canvas {
	return draw.Crop(dc, vg.Points(4), -vg.Points(14), vg.Points(4), -vg.Points(6))
}

// confusionSize is the default picture size for n classes.
func confusionSize(n int) int {
	return min(max(160+70*n, 480), maxPixels)
}

// Confusion draws the confusion-matrix heat map (see ConfusionPlot).
func Confusion(cm [][]int, classes []string, opts ConfusionOptions) (image.Image, error) {
	p, err := ConfusionPlot(cm, classes, opts)
	if err != nil {
		return nil, err
	}
	s, _, dpi, err := canvasSize(opts.Size, opts.Size, opts.DPI, confusionSize(len(classes)), confusionSize(len(classes)))
	if err != nil {
		return nil, fmt.Errorf("confusion plot: %w", err)
	}
	img, err := render(s, s, dpi, func(dc draw.Canvas) { p.Draw(confusionCanvas(dc)) })
	if err != nil {
		return nil, fmt.Errorf("confusion plot: %w", err)
	}
	return img, nil
}

// WriteConfusionPNG draws the confusion-matrix heat map and writes it as PNG.
func WriteConfusionPNG(w io.Writer, cm [][]int, classes []string, opts ConfusionOptions) error {
	img, err := Confusion(cm, classes, opts)
	if err != nil {
		return err
	}
	return encodePNG(w, img, "confusion plot")
}

// SaveConfusionPNG draws the confusion-matrix heat map into a PNG file.
func SaveConfusionPNG(path string, cm [][]int, classes []string, opts ConfusionOptions) error {
	return saveFile(path, func(w io.Writer) error { return WriteConfusionPNG(w, cm, classes, opts) })
}
