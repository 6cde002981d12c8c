package plot

import (
	"fmt"
	"image"
	"image/color"
	"io"

	gplot "gonum.org/v1/plot"
	"gonum.org/v1/plot/font"
	"gonum.org/v1/plot/text"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// Training says whether a layer's parameters train.
type Training int

// A layer has no parameters, or all, none or some of them train.
const (
	NoParams Training = iota
	Trains
	Frozen
	PartlyTrains
)

// LayerBox is one box of a layer graph: a stage or layer of a model.
type LayerBox struct {
	// Title is the first line ("layer4 (Sequential)").
	Title string
	// Detail is the second line (output shape, parameter count).
	Detail string
	// Training colours the box: green trains, grey is frozen, yellow
	// partly trains, white has no parameters.
	Training Training
}

// Box fill colours by Training.
var trainingColors = map[Training]color.RGBA{
	NoParams:     {255, 255, 255, 255},
	Trains:       {199, 233, 192, 255},
	Frozen:       {217, 217, 217, 255},
	PartlyTrains: {254, 230, 160, 255},
}

// Layout of the layer graph, in points (72 per inch).
const (
	graphWidth  = 540
	graphHeader = 46
	boxHeight   = 34
	boxGap      = 14
	graphFooter = 10
)

// LayerGraph draws a model as a column of boxes from input to output,
// joined by arrows, one per stage or layer, each with its output shape and
// parameter count and coloured by whether it trains. It is as tall as the
// model needs (at 96 DPI, about 64 pixels per box).
func LayerGraph(title string, boxes []LayerBox) (image.Image, error) {
	if len(boxes) == 0 {
		return nil, fmt.Errorf("layer graph: no layers")
	}
	const dpi = 96
	heightPt := graphHeader + len(boxes)*(boxHeight+boxGap) - boxGap + graphFooter
	w, h := graphWidth*dpi/72, heightPt*dpi/72
	if h > maxPixels {
		return nil, fmt.Errorf("layer graph: %d layers need %d pixels, more than %d", len(boxes), h, maxPixels)
	}
	handler := text.Plain{Fonts: font.DefaultCache}
	style := func(size vg.Length, xa draw.XAlignment) text.Style {
		return text.Style{Color: color.Black, Font: font.From(gplot.DefaultFont, size), XAlign: xa, YAlign: draw.YCenter, Handler: handler}
	}
	img, err := render(w, h, dpi, func(dc draw.Canvas) {
		top := dc.Max.Y
		dc.FillText(style(12, draw.XLeft), vg.Point{X: 10, Y: top - 14}, title)
		legend := []struct {
			t    Training
			name string
		}{{Trains, "trains"}, {Frozen, "frozen"}, {PartlyTrains, "partly"}, {NoParams, "no parameters"}}
		x := vg.Length(10)
		for _, l := range legend {
			r := vg.Rectangle{Min: vg.Point{X: x, Y: top - 38}, Max: vg.Point{X: x + 12, Y: top - 26}}
			dc.SetColor(trainingColors[l.t])
			dc.Fill(r.Path())
			dc.SetColor(color.Gray{Y: 90})
			dc.SetLineWidth(0.5)
			dc.Stroke(r.Path())
			dc.FillText(style(9, draw.XLeft), vg.Point{X: x + 16, Y: top - 32}, l.name)
			x += 100
		}
		line := draw.LineStyle{Color: color.Gray{Y: 60}, Width: 0.8}
		left, right := vg.Length(20), vg.Length(graphWidth-20)
		mid := (left + right) / 2
		for i, b := range boxes {
			y1 := top - vg.Length(graphHeader+i*(boxHeight+boxGap))
			y0 := y1 - boxHeight
			r := vg.Rectangle{Min: vg.Point{X: left, Y: y0}, Max: vg.Point{X: right, Y: y1}}
			dc.SetColor(trainingColors[b.Training])
			dc.Fill(r.Path())
			dc.SetColor(line.Color)
			dc.SetLineWidth(line.Width)
			dc.Stroke(r.Path())
			dc.FillText(style(10, draw.XLeft), vg.Point{X: left + 8, Y: y1 - 10}, b.Title)
			dc.FillText(style(8.5, draw.XLeft), vg.Point{X: left + 8, Y: y0 + 9}, b.Detail)
			if i+1 < len(boxes) {
				// An arrow down to the next box.
				dc.StrokeLine2(line, mid, y0, mid, y0-boxGap+2)
				head := vg.Path{}
				head.Move(vg.Point{X: mid - 4, Y: y0 - boxGap + 6})
				head.Line(vg.Point{X: mid + 4, Y: y0 - boxGap + 6})
				head.Line(vg.Point{X: mid, Y: y0 - boxGap})
				head.Close()
				dc.SetColor(line.Color)
				dc.Fill(head)
			}
		}
	})
	if err != nil {
		return nil, fmt.Errorf("layer graph: %w", err)
	}
	return img, nil
}

// WriteLayerGraphPNG draws the layer graph (see LayerGraph) as PNG.
func WriteLayerGraphPNG(w io.Writer, title string, boxes []LayerBox) error {
	img, err := LayerGraph(title, boxes)
	if err != nil {
		return err
	}
	return encodePNG(w, img, "layer graph")
}

// SaveLayerGraphPNG draws the layer graph into a PNG file, atomically.
func SaveLayerGraphPNG(path string, title string, boxes []LayerBox) error {
	return saveFile(path, func(w io.Writer) error { return WriteLayerGraphPNG(w, title, boxes) })
}
