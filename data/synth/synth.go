// Package synth generates a small synthetic facial-expression dataset in
// the layout of the real one (muxspace/facial_expressions), so that the
// whole flow (prepare, train, evaluate, predict) runs without a download.
//
// Each picture is a drawn face whose expression class shows in features a
// small CNN can see at 48x48 pixels: the mouth (closed line, smile, frown,
// one-sided smirk, open "D" smile with teeth, tall "O", wide open lens,
// bared teeth, tongue out), the brows (level, raised, arched, slanted in a
// "V" or the other way, one raised) and the eyes (relaxed, wide, narrowed,
// squeezed). Around those cues every picture varies: face position, scale
// and rotation (a few degrees), skin tone, hair, face proportions, gaze,
// background, side light, brightness and contrast, noise, blur, grey or
// colour, and size. Subjects ("persons") keep their skin, hair and face
// proportions across their pictures, so a split by subject means something.
//
// The output is deterministic: the same Options give byte-identical files.
//
// Layout written under the target folder:
//
//	data/legend.csv              header "user.id,image,emotion"
//	images/Synth_Person007_0003.jpg
//
// Image names are <subject>_<NNNN>.jpg like the real dataset's
// (George_W_Bush_0001.jpg): the subject is everything before the last
// underscore. The user.id column (an annotator in the real data) is
// "synth". Labels are the real dataset's lower-case emotion names.
package synth

import (
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"image"
	"image/jpeg"
	"image/png"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/fertorch/fertorch/internal/atomicfile"
)

// AllClasses returns the eight emotions of the real dataset, in its
// lower-case spelling and in alphabetical order (a new slice each call).
func AllClasses() []string {
	return []string{"anger", "contempt", "disgust", "fear", "happiness", "neutral", "sadness", "surprise"}
}

// Kinds of deliberate messiness (see Options.Messy).
const (
	// KindUpperCase is a legend row whose label is written in upper case
	// (HAPPINESS), as in parts of the real legend.
	KindUpperCase = "upper-case-label"
	// KindDuplicateRow is a legend row repeated verbatim.
	KindDuplicateRow = "duplicate-row"
	// KindUnlabelled is an image file that no legend row names.
	KindUnlabelled = "unlabelled-image"
	// KindPNGAsJPG is a labelled image stored as PNG under a .jpg name.
	KindPNGAsJPG = "png-named-jpg"
)

// Options configures Generate. The zero value is valid: all eight classes,
// 60 images each, 6 per subject, 48 to 160 pixels, half of them grey, no
// messiness, seed 0.
type Options struct {
	// Seed selects the dataset; equal options give byte-identical output.
	Seed uint64
	// Classes to generate, a subset of AllClasses() in any order (nil
	// means all eight). The legend uses these names.
	Classes []string
	// PerClass is the number of labelled images of each class (default 60,
	// at most 100000).
	PerClass int
	// ImagesPerSubject is how many images each synthetic person has
	// (default 6; the last person may have fewer). Classes are spread over
	// persons at random, so a person shows several expressions.
	ImagesPerSubject int
	// MinSize and MaxSize bound the square image side in pixels (defaults
	// 48 and 160, allowed 16..1024). Half the images are MaxSize, like the
	// real dataset's mostly 350 px faces; the rest are spread uniformly
	// between the two.
	MinSize, MaxSize int
	// GrayFraction is the share of images stored as single-channel grey
	// JPEG; the rest are colour. 0 means the default 0.5; a negative value
	// means none; 1 means all.
	GrayFraction float64
	// Quality is the JPEG quality, 1..100 (default 90).
	Quality int
	// Variation scales every random range of people, scenes and expression
	// jitter (face position, size and tilt, skin, hair, light, background,
	// contrast, noise) about its middle: 1, the default, is the full
	// variety; smaller values give more uniform faces whose expressions a
	// network learns from scratch in a few epochs (0.3 is the demo's
	// setting). 0 means the default; allowed range (0, 1].
	Variation float64
	// Messy injects, on top of the clean dataset, the kinds of mess the
	// real data has, each listed in Report.Injected:
	//
	//   - KindUpperCase: about one legend row in ten (at least one) has its
	//     label in upper case;
	//   - KindDuplicateRow: one legend row is repeated at the end of the
	//     legend;
	//   - KindUnlabelled: one extra image file (a face of a random class,
	//     named as the next image of an existing person) has no legend row;
	//   - KindPNGAsJPG: one labelled image is stored as PNG under its .jpg
	//     name.
	//
	// The labelled images and their classes are the same as without Messy.
	Messy bool
	// Overwrite allows generating into a folder that already holds a
	// synthetic dataset: data/legend.csv and images/Synth_* are removed
	// first. A folder with other images is never touched.
	Overwrite bool
	// Workers is the number of images drawn at once (default GOMAXPROCS).
	// It does not change the output.
	Workers int
}

// Sample describes one labelled image.
type Sample struct {
	// Image is the file name under images/.
	Image string `json:"image"`
	// Subject is the synthetic person, the name up to the last underscore.
	Subject string `json:"subject"`
	// Emotion is the class name, lower case.
	Emotion string `json:"emotion"`
	// Label is the emotion as written in the legend (upper case for some
	// rows when Messy).
	Label string `json:"label"`
	// Size is the width and height in pixels.
	Size int `json:"size"`
	// Gray reports a single-channel image.
	Gray bool `json:"gray"`
	// Format is "jpeg", or "png" for the PNG stored under a .jpg name.
	Format string `json:"format"`
}

// Injection records one deliberate piece of mess.
type Injection struct {
	// Kind is one of the Kind* constants.
	Kind string `json:"kind"`
	// Image is the file name concerned.
	Image string `json:"image"`
	// Detail says what was done, for people.
	Detail string `json:"detail"`
}

// Report describes what Generate wrote.
type Report struct {
	// Dir is the dataset folder.
	Dir string `json:"dir"`
	// Legend is the path of data/legend.csv.
	Legend string `json:"legend"`
	// Images is the path of the images folder.
	Images string `json:"images"`
	// Classes are the generated classes, in Options order.
	Classes []string `json:"classes"`
	// Samples are the labelled images in legend order (each once).
	Samples []Sample `json:"samples"`
	// PerClass counts labelled images per class.
	PerClass map[string]int `json:"per_class"`
	// Subjects is the number of synthetic persons.
	Subjects int `json:"subjects"`
	// Rows is the number of legend rows below the header (Samples plus
	// the duplicate row when Messy).
	Rows int `json:"rows"`
	// Files is the number of image files written (Samples plus the
	// unlabelled image when Messy).
	Files int `json:"files"`
	// Unlabelled are image files without a legend row.
	Unlabelled []string `json:"unlabelled,omitempty"`
	// Injected lists every deliberate piece of mess (empty unless Messy).
	Injected []Injection `json:"injected,omitempty"`
}

// job is one image to draw.
type job struct {
	name    string
	class   string
	subject int
	index   uint64 // stream for the image's randomness
	png     bool
}

func (o Options) withDefaults() (Options, error) {
	if o.Classes == nil {
		o.Classes = AllClasses()
	}
	if len(o.Classes) == 0 {
		return o, errors.New("no classes")
	}
	seen := map[string]bool{}
	for _, c := range o.Classes {
		known := false
		for _, k := range AllClasses() {
			known = known || c == k
		}
		if !known {
			return o, fmt.Errorf("unknown class %q (want some of %s)", c, strings.Join(AllClasses(), ", "))
		}
		if seen[c] {
			return o, fmt.Errorf("class %q listed twice", c)
		}
		seen[c] = true
	}
	o.Classes = append([]string(nil), o.Classes...)
	if o.PerClass == 0 {
		o.PerClass = 60
	}
	if o.PerClass < 1 || o.PerClass > 100000 {
		return o, fmt.Errorf("PerClass %d is outside 1..100000", o.PerClass)
	}
	if o.ImagesPerSubject == 0 {
		o.ImagesPerSubject = 6
	}
	if o.ImagesPerSubject < 1 {
		return o, fmt.Errorf("ImagesPerSubject %d is below 1", o.ImagesPerSubject)
	}
	if o.MinSize == 0 {
		o.MinSize = 48
	}
	if o.MaxSize == 0 {
		o.MaxSize = max(160, o.MinSize)
	}
	if o.MinSize < 16 || o.MaxSize > 1024 || o.MinSize > o.MaxSize {
		return o, fmt.Errorf("sizes %d..%d are not within 16..1024 in order", o.MinSize, o.MaxSize)
	}
	switch {
	case o.GrayFraction == 0:
		o.GrayFraction = 0.5
	case o.GrayFraction < 0:
		o.GrayFraction = 0
	case o.GrayFraction > 1:
		return o, fmt.Errorf("GrayFraction %v is above 1", o.GrayFraction)
	}
	if o.Quality == 0 {
		o.Quality = 90
	}
	if o.Variation == 0 {
		o.Variation = 1
	}
	if o.Variation < 0 || o.Variation > 1 {
		return o, fmt.Errorf("Variation %v is outside (0, 1]", o.Variation)
	}
	if o.Quality < 1 || o.Quality > 100 {
		return o, fmt.Errorf("JPEG quality %d is outside 1..100", o.Quality)
	}
	if o.Workers <= 0 {
		o.Workers = runtime.GOMAXPROCS(0)
	}
	return o, nil
}

// Generate writes a synthetic dataset under dir (created if needed) and
// reports what it wrote. It refuses a folder that already has a legend or
// images unless opts.Overwrite is set and the folder holds only a
// synthetic dataset.
func Generate(dir string, opts Options) (Report, error) {
	if dir == "" {
		return Report{}, errors.New("synth: no output folder given")
	}
	o, err := opts.withDefaults()
	if err != nil {
		return Report{}, fmt.Errorf("synth: %w", err)
	}
	imgDir := filepath.Join(dir, "images")
	dataDir := filepath.Join(dir, "data")
	legend := filepath.Join(dataDir, "legend.csv")
	if err := prepareDirs(imgDir, dataDir, legend, o.Overwrite); err != nil {
		return Report{}, fmt.Errorf("synth: %w", err)
	}

	total := o.PerClass * len(o.Classes)
	labels := make([]string, 0, total)
	for _, c := range o.Classes {
		for range o.PerClass {
			labels = append(labels, c)
		}
	}
	plan := newRNG(o.Seed, 3)
	plan.shuffle(len(labels), func(i, j int) { labels[i], labels[j] = labels[j], labels[i] })

	subjects := (total + o.ImagesPerSubject - 1) / o.ImagesPerSubject
	width := max(3, len(fmt.Sprint(subjects+1)))
	subjectName := func(s int) string { return fmt.Sprintf("Synth_Person%0*d", width, s+1) }
	jobs := make([]job, total)
	for i, c := range labels {
		s := i / o.ImagesPerSubject
		jobs[i] = job{
			name:    fmt.Sprintf("%s_%04d.jpg", subjectName(s), i%o.ImagesPerSubject+1),
			class:   c,
			subject: s,
			index:   uint64(i),
		}
	}

	rep := Report{
		Dir:      dir,
		Legend:   legend,
		Images:   imgDir,
		Classes:  o.Classes,
		PerClass: map[string]int{},
		Subjects: subjects,
	}
	rowLabels := make([]string, total)
	for i, j := range jobs {
		rowLabels[i] = j.class
	}
	var extra []job
	if o.Messy {
		// Decisions come from their own stream so that the clean part of
		// the dataset is the same with and without mess.
		mess := newRNG(o.Seed, 4)
		upper := 0
		for i := range rowLabels {
			if mess.chance(0.1) {
				rowLabels[i] = strings.ToUpper(rowLabels[i])
				upper++
			}
		}
		if upper == 0 {
			rowLabels[0] = strings.ToUpper(rowLabels[0])
		}
		for i, l := range rowLabels {
			if l != jobs[i].class {
				rep.Injected = append(rep.Injected, Injection{Kind: KindUpperCase, Image: jobs[i].name,
					Detail: fmt.Sprintf("label written as %q", l)})
			}
		}
		p := mess.intn(total)
		jobs[p].png = true
		rep.Injected = append(rep.Injected, Injection{Kind: KindPNGAsJPG, Image: jobs[p].name,
			Detail: "PNG data in a file named .jpg"})
		// The unlabelled image continues the last person's numbering.
		last := subjects - 1
		count := total - last*o.ImagesPerSubject
		u := job{
			name:    fmt.Sprintf("%s_%04d.jpg", subjectName(last), count+1),
			class:   o.Classes[mess.intn(len(o.Classes))],
			subject: last,
			index:   uint64(total),
		}
		extra = append(extra, u)
		rep.Unlabelled = append(rep.Unlabelled, u.name)
		rep.Injected = append(rep.Injected, Injection{Kind: KindUnlabelled, Image: u.name,
			Detail: fmt.Sprintf("image file (a %s face) without a legend row", u.class)})
	}

	all := append(append([]job(nil), jobs...), extra...)
	samples, err := drawAll(all, o, imgDir)
	if err != nil {
		return Report{}, fmt.Errorf("synth: %w", err)
	}
	rep.Files = len(all)
	for i := range jobs {
		s := samples[i]
		s.Label = rowLabels[i]
		rep.Samples = append(rep.Samples, s)
		rep.PerClass[s.Emotion]++
	}

	var b bytes.Buffer
	w := csv.NewWriter(&b)
	rows := [][]string{{"user.id", "image", "emotion"}}
	for _, s := range rep.Samples {
		rows = append(rows, []string{"synth", s.Image, s.Label})
	}
	if o.Messy {
		d := newRNG(o.Seed, 5).intn(len(rep.Samples))
		rows = append(rows, rows[d+1])
		rep.Injected = append(rep.Injected, Injection{Kind: KindDuplicateRow, Image: rep.Samples[d].Image,
			Detail: fmt.Sprintf("legend row %d repeated as the last row", d+1)})
	}
	if err := w.WriteAll(rows); err != nil {
		return Report{}, fmt.Errorf("synth: write legend: %w", err)
	}
	rep.Rows = len(rows) - 1
	if err := atomicfile.WriteFile(legend, b.Bytes()); err != nil {
		return Report{}, fmt.Errorf("synth: %w", err)
	}
	return rep, nil
}

// prepareDirs creates the folders and enforces the overwrite rules.
func prepareDirs(imgDir, dataDir, legend string, overwrite bool) error {
	entries, err := os.ReadDir(imgDir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("read %s: %w", imgDir, err)
	}
	_, legendErr := os.Stat(legend)
	hasLegend := legendErr == nil
	if len(entries) > 0 || hasLegend {
		if !overwrite {
			return fmt.Errorf("%s already holds a dataset (use Overwrite to replace a synthetic one)", filepath.Dir(imgDir))
		}
		for _, e := range entries {
			if !strings.HasPrefix(e.Name(), "Synth_") {
				return fmt.Errorf("%s holds %s, which is not a synthetic image; refusing to overwrite", imgDir, e.Name())
			}
		}
		for _, e := range entries {
			if err := os.Remove(filepath.Join(imgDir, e.Name())); err != nil {
				return fmt.Errorf("remove old image: %w", err)
			}
		}
		if hasLegend {
			if err := os.Remove(legend); err != nil {
				return fmt.Errorf("remove old legend: %w", err)
			}
		}
	}
	for _, d := range []string{imgDir, dataDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("create %s: %w", d, err)
		}
	}
	return nil
}

// drawAll renders and writes the images with o.Workers goroutines. Every
// image takes its randomness from its own stream, so the result does not
// depend on the number of workers.
func drawAll(jobs []job, o Options, imgDir string) ([]Sample, error) {
	people := map[int]person{}
	for _, j := range jobs {
		if _, ok := people[j.subject]; !ok {
			pr := newRNG(o.Seed, 2, uint64(j.subject))
			pr.spread = spreadOf(o)
			people[j.subject] = newPerson(pr)
		}
	}
	out := make([]Sample, len(jobs))
	errs := make([]error, len(jobs))
	next := make(chan int)
	var failed atomic.Bool
	var wg sync.WaitGroup
	for range min(o.Workers, len(jobs)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				out[i], errs[i] = drawOne(jobs[i], people[jobs[i].subject], o, imgDir)
				if errs[i] != nil {
					failed.Store(true)
				}
			}
		}()
	}
	for i := range jobs {
		if failed.Load() {
			break
		}
		next <- i
	}
	close(next)
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// spreadOf is the rng spread for o.Variation (0: full ranges, the default
// arithmetic).
func spreadOf(o Options) float64 {
	if o.Variation >= 1 {
		return 0
	}
	return o.Variation
}

func drawOne(j job, p person, o Options, imgDir string) (Sample, error) {
	r := newRNG(o.Seed, 1, j.index)
	r.spread = spreadOf(o)
	size := o.MaxSize
	if r.chance(0.5) {
		size = o.MinSize + r.intn(o.MaxSize-o.MinSize+1)
	}
	e := expressionFor(j.class, r)
	s := newScene(r, size, o.GrayFraction)
	rgba := renderFace(p, e, s)
	var img image.Image = rgba
	if s.gray {
		g := image.NewGray(rgba.Bounds())
		for i := range g.Pix {
			c := rgba.Pix[4*i : 4*i+3]
			g.Pix[i] = uint8((299*int(c[0]) + 587*int(c[1]) + 114*int(c[2]) + 500) / 1000)
		}
		img = g
	}
	var b bytes.Buffer
	format := "jpeg"
	if j.png {
		format = "png"
		if err := png.Encode(&b, img); err != nil {
			return Sample{}, fmt.Errorf("encode %s: %w", j.name, err)
		}
	} else if err := jpeg.Encode(&b, img, &jpeg.Options{Quality: o.Quality}); err != nil {
		return Sample{}, fmt.Errorf("encode %s: %w", j.name, err)
	}
	if err := atomicfile.WriteFile(filepath.Join(imgDir, j.name), b.Bytes()); err != nil {
		return Sample{}, err
	}
	return Sample{
		Image:   j.name,
		Subject: j.name[:strings.LastIndexByte(j.name, '_')],
		Emotion: j.class,
		Label:   j.class,
		Size:    size,
		Gray:    s.gray,
		Format:  format,
	}, nil
}
