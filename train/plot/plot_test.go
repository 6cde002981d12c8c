package plot

import (
	"bytes"
	"errors"
	"image"
	"image/color"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

func sampleHistory() History {
	h := History{}
	for i := 1; i <= 10; i++ {
		f := float64(i)
		h.Epochs = append(h.Epochs, Epoch{
			Epoch:     i,
			TrainLoss: 2.0 / f,
			TrainAcc:  1 - 0.7/f,
			ValLoss:   2.2/f + 0.01*f,
			ValAcc:    0.95 - 0.75/f,
			LR:        1e-3 * math.Pow(0.5, f-1),
			Seconds:   12.5 + 0.1*f,
		})
	}
	// Epoch 3 has no validation: it must be skipped, not plotted as zero.
	h.Epochs[2].ValLoss = math.NaN()
	h.Epochs[2].ValAcc = math.NaN()
	return h
}

// decodeStats decodes a PNG and reports its size, the variance of its grey
// levels and the number of clearly non-white pixels inside rect (nil: the
// whole picture).
func decodeStats(t *testing.T, data []byte, rect *image.Rectangle) (image.Image, float64, int) {
	t.Helper()
	img, err := png.Decode(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("decode PNG: %v", err)
	}
	b := img.Bounds()
	var sum, sum2 float64
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			g := float64(color.GrayModel.Convert(img.At(x, y)).(color.Gray).Y)
			sum += g
			sum2 += g * g
		}
	}
	n := float64(b.Dx() * b.Dy())
	variance := sum2/n - (sum/n)*(sum/n)
	r := b
	if rect != nil {
		r = *rect
	}
	dark := 0
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			cr, cg, cb, _ := img.At(x, y).RGBA()
			if cr>>8 < 200 || cg>>8 < 200 || cb>>8 < 200 {
				dark++
			}
		}
	}
	return img, variance, dark
}

func TestCurvesPNG(t *testing.T) {
	h := sampleHistory()
	for _, c := range []struct {
		name       string
		opts       CurvesOptions
		wantW      int
		wantH      int
		wantPanels int
	}{
		{"default", CurvesOptions{}, 1280, 480, 2},
		{"with lr", CurvesOptions{LearningRate: true, PanelWidth: 400, PanelHeight: 300}, 1200, 300, 3},
		{"extra", CurvesOptions{LearningRate: true, PanelWidth: 300, PanelHeight: 200, Extra: []Panel{{
			Title: "Validation macro F1", YLabel: "F1",
			Series: []Series{{Name: "macro F1", Values: []float64{.1, .2, .3, .4, .5, .6, .7, .8, .85, .9}}},
		}}}, 600, 400, 4},
	} {
		t.Run(c.name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := WriteCurvesPNG(&buf, h, c.opts); err != nil {
				t.Fatal(err)
			}
			if got := len(CurvesPanels(h, c.opts)); got != c.wantPanels {
				t.Errorf("%d panels, want %d", got, c.wantPanels)
			}
			// The middle of the first panel's plotting area.
			inner := image.Rect(c.wantW/(2*min(c.wantPanels, 3))-c.wantW/16, c.wantH/4, c.wantW/(2*min(c.wantPanels, 3))+c.wantW/16, c.wantH/2)
			img, variance, dark := decodeStats(t, buf.Bytes(), &inner)
			if b := img.Bounds(); b.Dx() != c.wantW || b.Dy() != c.wantH {
				t.Errorf("size %v, want %dx%d", b, c.wantW, c.wantH)
			}
			if variance <= 0 {
				t.Error("picture is blank")
			}
			if dark == 0 {
				t.Error("no curve pixels in the first panel's plotting area")
			}
		})
	}
}

// TestCurvesShowData checks that the curves land where the data says: in the
// loss panel the training curve (blue) must be drawn, and its pixels must
// move down from left to right as the loss falls.
func TestCurvesShowData(t *testing.T) {
	h := sampleHistory()
	p, err := PanelPlot(h, LossPanel(h))
	if err != nil {
		t.Fatal(err)
	}
	img, err := render(640, 480, 96, p.Draw)
	if err != nil {
		t.Fatal(err)
	}
	blue := seriesColors[0]
	orange := seriesColors[1]
	var blueLeftY, blueRightY []int
	orangeSeen := 0
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bb, _ := img.At(x, y).RGBA()
			px := color.RGBA{uint8(r >> 8), uint8(g >> 8), uint8(bb >> 8), 255}
			switch {
			case near(px, blue, 10) && x < b.Dx()/4:
				blueLeftY = append(blueLeftY, y)
			case near(px, blue, 10) && x > b.Dx()*3/4:
				blueRightY = append(blueRightY, y)
			case near(px, orange, 10):
				orangeSeen++
			}
		}
	}
	if len(blueLeftY) == 0 || len(blueRightY) == 0 || orangeSeen == 0 {
		t.Fatalf("series pixels missing: blue left %d, blue right %d, orange %d", len(blueLeftY), len(blueRightY), orangeSeen)
	}
	if minInt(blueLeftY) >= maxInt(blueRightY) {
		t.Errorf("falling loss should be drawn high on the left (rows %d..) and low on the right (..%d)", minInt(blueLeftY), maxInt(blueRightY))
	}
}

func near(a, b color.RGBA, tol int) bool {
	d := func(x, y uint8) bool { return math.Abs(float64(x)-float64(y)) <= float64(tol) }
	return d(a.R, b.R) && d(a.G, b.G) && d(a.B, b.B)
}

func minInt(v []int) int {
	m := v[0]
	for _, x := range v {
		m = min(m, x)
	}
	return m
}

func maxInt(v []int) int {
	m := v[0]
	for _, x := range v {
		m = max(m, x)
	}
	return m
}

func TestCurvesErrors(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteCurvesPNG(&buf, History{}, CurvesOptions{}); !errors.Is(err, ErrEmptyHistory) {
		t.Errorf("empty history: err = %v", err)
	}
	h := sampleHistory()
	if err := WriteCurvesPNG(&buf, h, CurvesOptions{PanelWidth: 10}); err == nil {
		t.Error("tiny panel accepted")
	}
	if err := WriteCurvesPNG(&buf, h, CurvesOptions{PanelWidth: 5000}); err == nil {
		t.Error("figure wider than the limit accepted")
	}
	if err := WriteCurvesPNG(&buf, h, CurvesOptions{DPI: -1}); err == nil {
		t.Error("negative DPI accepted")
	}
	bad := CurvesOptions{Extra: []Panel{{Title: "x", Series: []Series{{Name: "short", Values: []float64{1}}}}}}
	if err := WriteCurvesPNG(&buf, h, bad); err == nil || !strings.Contains(err.Error(), "1 values for 10 epochs") {
		t.Errorf("short series: err = %v", err)
	}
	if buf.Len() != 0 {
		t.Error("failed calls wrote output")
	}
	if err := SavePlotPNG(filepath.Join(t.TempDir(), "x.png"), nil, 0, 0, 0); err == nil {
		t.Error("nil plot accepted")
	}
}

func TestCurvesEdgeCases(t *testing.T) {
	// One epoch, no validation, no learning rate: still a picture.
	nan := math.NaN()
	h := History{Epochs: []Epoch{{Epoch: 1, TrainLoss: 1.5, TrainAcc: 0.4, ValLoss: nan, ValAcc: nan, LR: nan, Seconds: 3}}}
	var buf bytes.Buffer
	if err := WriteCurvesPNG(&buf, h, CurvesOptions{LearningRate: true}); err != nil {
		t.Fatal(err)
	}
	_, variance, _ := decodeStats(t, buf.Bytes(), nil)
	if variance <= 0 {
		t.Error("blank picture")
	}
	p, err := PanelPlot(h, LearningRatePanel(h))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(p.Title.Text, "(no data)") {
		t.Errorf("title %q should say there is no data", p.Title.Text)
	}
	// Infinite loss (divergence) is left out rather than failing.
	h.Epochs = append(h.Epochs, Epoch{Epoch: 2, TrainLoss: math.Inf(1), TrainAcc: 0.1, ValLoss: nan, ValAcc: nan, LR: 1e-3})
	if err := WriteCurvesPNG(&buf, h, CurvesOptions{}); err != nil {
		t.Fatal(err)
	}
}

func TestIntegerTicks(t *testing.T) {
	for _, c := range []struct {
		lo, hi float64
		want   []string
	}{
		{1, 3, []string{"1", "2", "3"}},
		{0.5, 2.5, []string{"1", "2"}},
		{1, 10, []string{"1", "2", "3", "4", "5", "6", "7", "8", "9", "10"}},
		{1, 30, []string{"5", "10", "15", "20", "25", "30"}},
		{1, 100, []string{"10", "20", "30", "40", "50", "60", "70", "80", "90", "100"}},
	} {
		var got []string
		for _, tk := range (integerTicks{}).Ticks(c.lo, c.hi) {
			got = append(got, tk.Label)
		}
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("ticks(%v, %v) = %v, want %v", c.lo, c.hi, got, c.want)
		}
	}
}

func TestSaveFiles(t *testing.T) {
	dir := t.TempDir()
	h := sampleHistory()
	curves := filepath.Join(dir, "curves.png")
	if err := SaveCurvesPNG(curves, h, CurvesOptions{}); err != nil {
		t.Fatal(err)
	}
	p, err := PanelPlot(h, AccuracyPanel(h))
	if err != nil {
		t.Fatal(err)
	}
	acc := filepath.Join(dir, "accuracy.png")
	if err := SavePlotPNG(acc, p, 500, 400, 0); err != nil {
		t.Fatal(err)
	}
	cmPath := filepath.Join(dir, "confusion.png")
	if err := SaveConfusionPNG(cmPath, [][]int{{3, 1}, {0, 4}}, []string{"a", "b"}, ConfusionOptions{}); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]image.Point{curves: {1280, 480}, acc: {500, 400}, cmPath: {480, 480}} {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		img, variance, _ := decodeStats(t, data, nil)
		if img.Bounds().Size() != want || variance <= 0 {
			t.Errorf("%s: size %v variance %v, want %v and > 0", filepath.Base(path), img.Bounds().Size(), variance, want)
		}
	}
	// Only the three pictures: no temporary files left behind.
	entries, _ := os.ReadDir(dir)
	if len(entries) != 3 {
		t.Errorf("%d files in the output folder, want 3", len(entries))
	}
	// The folder is made when missing, but not under a file.
	if err := SaveCurvesPNG(filepath.Join(dir, "curves.png", "x.png"), h, CurvesOptions{}); err == nil {
		t.Error("saving into a folder under a file succeeded")
	}
	if err := SaveCurvesPNG(filepath.Join(dir, "empty.png"), History{}, CurvesOptions{}); err == nil {
		t.Error("saving an empty history succeeded")
	}
	if _, err := os.Stat(filepath.Join(dir, "empty.png")); !os.IsNotExist(err) {
		t.Error("a failed save left a file")
	}
}

func TestConfusionPNG(t *testing.T) {
	classes := []string{"anger", "contempt", "disgust", "fear", "happiness", "neutral", "sadness", "surprise"}
	cm := [][]int{
		{40, 2, 3, 0, 0, 5, 0, 0},
		{1, 9, 0, 0, 0, 0, 0, 0},
		{2, 0, 30, 1, 0, 0, 7, 0},
		{0, 0, 0, 0, 0, 0, 0, 0}, // no samples
		{0, 0, 0, 1, 120, 9, 0, 0},
		{3, 1, 0, 2, 5, 110, 9, 0},
		{0, 0, 4, 3, 0, 8, 25, 0},
		{0, 0, 0, 6, 1, 1, 0, 12},
	}
	for _, opts := range []ConfusionOptions{{}, {Percent: true, Size: 700, Title: "Test set"}} {
		var buf bytes.Buffer
		if err := WriteConfusionPNG(&buf, cm, classes, opts); err != nil {
			t.Fatal(err)
		}
		want := confusionSize(len(classes))
		if opts.Size != 0 {
			want = opts.Size
		}
		inner := image.Rect(want/3, want/3, want*2/3, want*2/3)
		img, variance, dark := decodeStats(t, buf.Bytes(), &inner)
		if img.Bounds().Dx() != want || img.Bounds().Dy() != want {
			t.Errorf("size %v, want %dx%d", img.Bounds(), want, want)
		}
		if variance <= 0 || dark == 0 {
			t.Errorf("blank heat map: variance %v, dark pixels %d", variance, dark)
		}
	}
}

// TestConfusionCellColours renders the heat map and reads back the colour
// of every cell: it must be the colour of the cell's share of its row, with
// row 0 at the top and column 0 at the left.
func TestConfusionCellColours(t *testing.T) {
	classes := []string{"anger", "happiness", "neutral"}
	cm := [][]int{
		{8, 2, 0},
		{1, 1, 2},
		{0, 0, 0},
	}
	p, err := ConfusionPlot(cm, classes, ConfusionOptions{})
	if err != nil {
		t.Fatal(err)
	}
	const size, dpi = 480, 96
	img := image.NewRGBA(image.Rect(0, 0, size, size))
	c := vgimg.NewWith(vgimg.UseImage(img), vgimg.UseDPI(dpi))
	dc := confusionCanvas(draw.New(c))
	p.Draw(dc)
	out := c.Image()
	data := p.DataCanvas(dc)
	trX, trY := p.Transforms(&data)
	toPx := func(v vg.Length) float64 { return float64(v) * dpi / 72 }
	shares := RowShares(cm)
	for i := range cm {
		for j := range cm[i] {
			// A point a third of the way from the centre to the cell's
			// corner, clear of the count text and the grid lines.
			x := toPx(trX(float64(j) - 0.3))
			y := float64(size) - toPx(trY(float64(len(cm)-1-i)+0.3))
			r, g, b, _ := out.At(int(x), int(y)).RGBA()
			got := color.RGBA{uint8(r >> 8), uint8(g >> 8), uint8(b >> 8), 255}
			want := CellColor(shares[i][j])
			if !near(got, want, 3) {
				t.Errorf("cell (%d, %d) share %.2f: colour %v at (%.0f, %.0f), want %v", i, j, shares[i][j], got, x, y, want)
			}
		}
	}
}

func TestCellColorAndShares(t *testing.T) {
	if got := CellColor(0); got != blues[0] {
		t.Errorf("CellColor(0) = %v", got)
	}
	if got := CellColor(1); got != blues[len(blues)-1] {
		t.Errorf("CellColor(1) = %v", got)
	}
	if CellColor(math.NaN()) != CellColor(0) || CellColor(-3) != CellColor(0) || CellColor(7) != CellColor(1) {
		t.Error("out-of-range shares are not clamped")
	}
	if got, want := CellColor(0.125), (color.RGBA{223, 235, 247, 255}); got != want {
		t.Errorf("CellColor(0.125) = %v, want %v", got, want)
	}
	// Darker with a larger share.
	lum := func(c color.RGBA) float64 { return 0.299*float64(c.R) + 0.587*float64(c.G) + 0.114*float64(c.B) }
	for s := 0.0; s < 1; s += 0.05 {
		if lum(CellColor(s+0.05)) >= lum(CellColor(s)) {
			t.Errorf("colour at %.2f is not darker than at %.2f", s+0.05, s)
		}
	}
	got := RowShares([][]int{{1, 3}, {0, 0}})
	if want := [][]float64{{0.25, 0.75}, {0, 0}}; !reflect.DeepEqual(got, want) {
		t.Errorf("RowShares = %v, want %v", got, want)
	}
}

func TestConfusionErrors(t *testing.T) {
	var buf bytes.Buffer
	for _, c := range []struct {
		name    string
		cm      [][]int
		classes []string
		opts    ConfusionOptions
	}{
		{"no classes", nil, nil, ConfusionOptions{}},
		{"rows", [][]int{{1, 0}}, []string{"a", "b"}, ConfusionOptions{}},
		{"ragged", [][]int{{1, 0}, {1}}, []string{"a", "b"}, ConfusionOptions{}},
		{"negative", [][]int{{1, 0}, {-1, 0}}, []string{"a", "b"}, ConfusionOptions{}},
		{"size", [][]int{{1}}, []string{"a"}, ConfusionOptions{Size: 20000}},
	} {
		if err := WriteConfusionPNG(&buf, c.cm, c.classes, c.opts); err == nil {
			t.Errorf("%s: no error", c.name)
		}
	}
}

func TestHistoryCSVRoundTrip(t *testing.T) {
	h := sampleHistory()
	h.Epochs[4].TrainLoss = math.Inf(1)
	h.Epochs[5].LR = 1e-300
	h.Epochs[6].Seconds = 0.1 + 0.2 // not exactly 0.3
	var buf bytes.Buffer
	if err := WriteCSV(&buf, h); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(buf.String(), "\n")
	if lines[0] != "epoch,train_loss,train_acc,val_loss,val_acc,lr,seconds" {
		t.Errorf("header %q", lines[0])
	}
	if want := "3,0.6666666666666666,0.7666666666666667,,,0.00025,12.8"; lines[3] != want {
		t.Errorf("row 3 = %q, want %q", lines[3], want)
	}
	if !strings.HasPrefix(lines[5], "5,+Inf,") {
		t.Errorf("row 5 = %q, want +Inf loss", lines[5])
	}
	back, err := ReadCSV(&buf)
	if err != nil {
		t.Fatal(err)
	}
	assertSameHistory(t, back, h)

	// Columns in another order, some missing.
	back, err = ReadCSV(strings.NewReader("val_acc,epoch\n0.5,1\n,2\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(back.Epochs) != 2 || back.Epochs[0].ValAcc != 0.5 || back.Epochs[1].Epoch != 2 ||
		!math.IsNaN(back.Epochs[1].ValAcc) || !math.IsNaN(back.Epochs[0].TrainLoss) {
		t.Errorf("reordered CSV read as %+v", back)
	}
	for name, in := range map[string]string{
		"empty":     "",
		"no rows":   "epoch,train_loss\n",
		"unknown":   "epoch,bogus\n1,2\n",
		"duplicate": "epoch,lr,lr\n1,2,3\n",
		"no epoch":  "lr\n1\n",
		"bad epoch": "epoch\nx\n",
		"bad float": "epoch,lr\n1,fast\n",
		"ragged":    "epoch,lr\n1\n",
	} {
		if _, err := ReadCSV(strings.NewReader(in)); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	if err := WriteCSV(&buf, History{}); !errors.Is(err, ErrEmptyHistory) {
		t.Errorf("empty history: %v", err)
	}
}

func TestHistoryJSONRoundTrip(t *testing.T) {
	h := sampleHistory()
	h.Epochs[4].TrainLoss = math.Inf(1)
	h.Epochs[5].ValLoss = math.Inf(-1)
	var buf bytes.Buffer
	if err := WriteJSON(&buf, h); err != nil {
		t.Fatal(err)
	}
	s := buf.String()
	for _, want := range []string{`"epochs": [`, `"val_loss": null`, `"train_loss": "+Inf"`, `"val_loss": "-Inf"`, `"lr": 0.00025`} {
		if !strings.Contains(s, want) {
			t.Errorf("JSON lacks %s:\n%s", want, s)
		}
	}
	back, err := ReadJSON(&buf)
	if err != nil {
		t.Fatal(err)
	}
	assertSameHistory(t, back, h)
	for name, in := range map[string]string{
		"empty":         `{"epochs": []}`,
		"unknown":       `{"epochs": [{"epoch": 1, "bogus": 2}]}`,
		"bad string":    `{"epochs": [{"epoch": 1, "lr": "fast"}]}`,
		"finite string": `{"epochs": [{"epoch": 1, "lr": "0.5"}]}`,
		"bad type":      `{"epochs": [{"epoch": "one"}]}`,
		"top level":     `{"rows": []}`,
		"syntax":        `{"epochs": [`,
	} {
		if _, err := ReadJSON(strings.NewReader(in)); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	if err := WriteJSON(&buf, History{}); !errors.Is(err, ErrEmptyHistory) {
		t.Errorf("empty history: %v", err)
	}
}

func TestHistoryFiles(t *testing.T) {
	dir := t.TempDir()
	h := sampleHistory()
	csvPath, jsonPath := filepath.Join(dir, "history.csv"), filepath.Join(dir, "history.json")
	if err := SaveCSV(csvPath, h); err != nil {
		t.Fatal(err)
	}
	if err := SaveJSON(jsonPath, h); err != nil {
		t.Fatal(err)
	}
	fromCSV, err := LoadCSV(csvPath)
	if err != nil {
		t.Fatal(err)
	}
	fromJSON, err := LoadJSON(jsonPath)
	if err != nil {
		t.Fatal(err)
	}
	assertSameHistory(t, fromCSV, h)
	assertSameHistory(t, fromJSON, h)
	if _, err := LoadCSV(filepath.Join(dir, "nope.csv")); err == nil {
		t.Error("missing file loaded")
	}
	if _, err := LoadJSON(csvPath); err == nil || !strings.Contains(err.Error(), "history.csv") {
		t.Errorf("CSV read as JSON: err = %v", err)
	}
}

// assertSameHistory compares bit for bit, NaN equal to NaN.
func assertSameHistory(t *testing.T, got, want History) {
	t.Helper()
	if len(got.Epochs) != len(want.Epochs) {
		t.Fatalf("%d epochs, want %d", len(got.Epochs), len(want.Epochs))
	}
	for i := range want.Epochs {
		g, w := got.Epochs[i], want.Epochs[i]
		if g.Epoch != w.Epoch {
			t.Errorf("row %d: epoch %d, want %d", i, g.Epoch, w.Epoch)
		}
		gf, wf := g.floats(), w.floats()
		for k := range gf {
			a, b := *gf[k], *wf[k]
			if math.Float64bits(a) != math.Float64bits(b) && !(math.IsNaN(a) && math.IsNaN(b)) {
				t.Errorf("row %d %s: %v, want %v", i, columns[k+1], a, b)
			}
		}
	}
}
