package data

import (
	"bufio"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/fertorch/fertorch/internal/atomicfile"
)

// Emotions returns the eight labels of the facial_expressions dataset, in
// sorted order (the class indices Keras' flow_from_directory would give).
func Emotions() []string {
	return []string{"anger", "contempt", "disgust", "fear", "happiness", "neutral", "sadness", "surprise"}
}

// Sample is one labelled image.
type Sample struct {
	// Path is the file to read (the images folder or class folder joined with
	// Name).
	Path string
	// Name is the file name relative to the images folder (legend) or to the
	// class folder (directory layout), with forward slashes.
	Name string
	// Label indexes the dataset's Classes.
	Label int
	// Subject is the person's identity derived from the file name.
	Subject string
}

// SkipKind classifies why a file or a row was left out.
type SkipKind string

// The reasons a labelled image can be left out.
const (
	SkipUnsafeName   SkipKind = "unsafe-name"   // name leaves the images folder
	SkipBadLabel     SkipKind = "empty-label"   // row without a label
	SkipUnknownLabel SkipKind = "unknown-label" // label not among the classes
	SkipConflict     SkipKind = "conflict"      // rows for the same image disagree
	SkipMissing      SkipKind = "missing"       // listed, but no such file
	SkipUnreadable   SkipKind = "unreadable"    // the file cannot be read
	SkipEmpty        SkipKind = "empty"         // zero-byte file
	SkipFormat       SkipKind = "format"        // not a supported image format
	SkipTooLarge     SkipKind = "too-large"     // dimensions or bytes over the limits
	SkipCorrupt      SkipKind = "corrupt"       // the decoder failed
)

// Skip records a labelled image (or legend row) that was left out, and why.
type Skip struct {
	// Path is the file concerned (or the name as written in the legend).
	Path string
	// Line is the legend line, 0 when the skip is not about a row.
	Line int
	// Kind classifies the problem; Reason explains it.
	Kind   SkipKind
	Reason string
}

// String formats the skip as "path (line N): kind: reason".
func (s Skip) String() string {
	if s.Line > 0 {
		return fmt.Sprintf("%s (line %d): %s: %s", s.Path, s.Line, s.Kind, s.Reason)
	}
	return fmt.Sprintf("%s: %s: %s", s.Path, s.Kind, s.Reason)
}

// SkipExamples is how many skipped files of each kind a skip report shows;
// the rest are counted (and listed in full by WriteSkipList).
const SkipExamples = 5

// maxReportLine bounds one printed example, so that a hostile legend (a
// label of a megabyte) cannot flood the terminal either.
const maxReportLine = 300

// WriteSkipReport writes a bounded summary of skipped files: the count per
// kind, then per kind up to SkipExamples examples with their reason and the
// number not shown. WriteSkipList writes every one of them to a file.
func WriteSkipReport(w io.Writer, skips []Skip) error {
	return WriteSkipSummary(w, skips, "")
}

// WriteSkipSummary is WriteSkipReport that also names listFile, the file
// holding the full list (see WriteSkipList), when it is not empty.
func WriteSkipSummary(w io.Writer, skips []Skip, listFile string) error {
	if len(skips) == 0 {
		_, err := fmt.Fprintln(w, "skipped: none")
		return err
	}
	byKind := map[SkipKind][]int{}
	var kinds []string
	for i, s := range skips {
		if len(byKind[s.Kind]) == 0 {
			kinds = append(kinds, string(s.Kind))
		}
		byKind[s.Kind] = append(byKind[s.Kind], i)
	}
	sort.Strings(kinds)
	var b strings.Builder
	parts := make([]string, len(kinds))
	for i, k := range kinds {
		parts[i] = fmt.Sprintf("%s %d", k, len(byKind[SkipKind(k)]))
	}
	fmt.Fprintf(&b, "skipped: %d (%s)\n", len(skips), strings.Join(parts, ", "))
	for _, k := range kinds {
		idx := byKind[SkipKind(k)]
		fmt.Fprintf(&b, "  %s (%d):\n", k, len(idx))
		for _, i := range idx[:min(len(idx), SkipExamples)] {
			s := skips[i]
			line := s.Path
			if s.Line > 0 {
				line += fmt.Sprintf(" (line %d)", s.Line)
			}
			fmt.Fprintf(&b, "    %s\n", clip(line+": "+s.Reason, maxReportLine))
		}
		if len(idx) > SkipExamples {
			fmt.Fprintf(&b, "    ... and %d more\n", len(idx)-SkipExamples)
		}
	}
	if listFile != "" {
		fmt.Fprintf(&b, "  every skipped file with its reason: %s\n", listFile)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// clip shortens s to at most n bytes (on a rune boundary), marking the cut.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n - len("...")
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "..."
}

// SkipListHeader is the header row of the file WriteSkipList writes.
var SkipListHeader = []string{"file", "line", "kind", "reason"}

// WriteSkipList writes every skip to path as CSV (file, line, kind, reason;
// line is empty when the skip is not about a legend row), atomically. An
// empty list writes the header alone, so the file always says what the last
// run left out.
func WriteSkipList(path string, skips []Skip) error {
	err := atomicfile.Write(path, func(w io.Writer) error {
		bw := bufio.NewWriter(w)
		cw := csv.NewWriter(bw)
		if err := cw.Write(SkipListHeader); err != nil {
			return err
		}
		for _, s := range skips {
			line := ""
			if s.Line > 0 {
				line = strconv.Itoa(s.Line)
			}
			if err := cw.Write([]string{s.Path, line, string(s.Kind), s.Reason}); err != nil {
				return err
			}
		}
		cw.Flush()
		if err := cw.Error(); err != nil {
			return err
		}
		return bw.Flush()
	})
	if err != nil {
		return fmt.Errorf("skip list: %w", err)
	}
	return nil
}

// Dataset is a list of labelled images with sorted class names, what was
// left out on the way, and, once decoded, the resized pixels of every
// sample.
type Dataset struct {
	// Classes are the class names in index order (sorted).
	Classes []string
	// Samples are the labelled images, in legend order or in
	// flow_from_directory order.
	Samples []Sample
	// Skipped lists every labelled image or row that was left out, with the
	// reason: legend problems, missing files, undecodable images.
	Skipped []Skip
	// Legend summarizes the legend file for datasets opened with OpenLegend.
	Legend *LegendReport
	// Root is the images folder or the layout split folder.
	Root string

	images        []Image
	height, width int
}

// Len is the number of samples.
func (d *Dataset) Len() int { return len(d.Samples) }

// Counts returns the number of samples per class.
func (d *Dataset) Counts() []int {
	c := make([]int, len(d.Classes))
	for _, s := range d.Samples {
		if s.Label >= 0 && s.Label < len(c) {
			c[s.Label]++
		}
	}
	return c
}

// Labels returns every sample's class index.
func (d *Dataset) Labels() []int {
	l := make([]int, len(d.Samples))
	for i, s := range d.Samples {
		l[i] = s.Label
	}
	return l
}

// Paths returns every sample's source file.
func (d *Dataset) Paths() []string {
	p := make([]string, len(d.Samples))
	for i, s := range d.Samples {
		p[i] = s.Path
	}
	return p
}

// Decoded reports whether the dataset holds pixels (see Decode).
func (d *Dataset) Decoded() bool { return d.images != nil }

// Size is the height and width of the decoded images (0, 0 before Decode).
func (d *Dataset) Size() (h, w int) { return d.height, d.width }

// Image returns sample i's decoded, resized pixels (1 or 3 channels).
func (d *Dataset) Image(i int) (Image, bool) {
	if d.images == nil || i < 0 || i >= len(d.images) {
		return Image{}, false
	}
	return d.images[i], true
}

// Subset returns a dataset with the samples at the given indices (and their
// pixels when decoded), sharing the class list.
func (d *Dataset) Subset(idx []int) (*Dataset, error) {
	out := &Dataset{Classes: append([]string(nil), d.Classes...), Root: d.Root, height: d.height, width: d.width}
	out.Samples = make([]Sample, len(idx))
	if d.images != nil {
		out.images = make([]Image, len(idx))
	}
	for j, i := range idx {
		if i < 0 || i >= len(d.Samples) {
			return nil, fmt.Errorf("subset: index %d out of range [0, %d)", i, len(d.Samples))
		}
		out.Samples[j] = d.Samples[i]
		if d.images != nil {
			out.images[j] = d.images[i]
		}
	}
	return out, nil
}

// LegendOptions controls OpenLegend.
type LegendOptions struct {
	// Classes are the accepted labels, case-folded; nil means Emotions().
	// The dataset's classes are these, sorted, whether or not each occurs.
	Classes []string
	// AnyLabel accepts every non-empty label; the classes are then the sorted
	// labels that occur.
	AnyLabel bool
}

// DuplicateRow is a legend row dropped because an earlier row lists the same
// image with the same label.
type DuplicateRow struct {
	// Image is the repeated name; Line the dropped row, FirstLine the kept one.
	Image           string
	Line, FirstLine int
}

// Conflict is an image listed with different labels; all its rows are
// dropped.
type Conflict struct {
	// Image is the name, Labels the distinct labels, Lines the rows.
	Image  string
	Labels []string
	Lines  []int
}

// LegendReport summarizes what OpenLegend found.
type LegendReport struct {
	// File is the legend path.
	File string
	// Rows is the number of data rows.
	Rows int
	// UniqueImages is the number of distinct (acceptable) image names.
	UniqueImages int
	// Duplicates are rows repeating an earlier row's image and label.
	Duplicates []DuplicateRow
	// Conflicts are images listed with different labels.
	Conflicts []Conflict
	// Rejected are rows with an unsafe name, an empty label or an unknown label.
	Rejected []Skip
	// Missing are rows whose image is not in the images folder.
	Missing []Skip
	// Unusable are rows naming something that is not a readable file: a
	// folder, a broken link, a pipe.
	Unusable []Skip
	// Unlisted are files in the images folder that no row names.
	Unlisted []string
	// RawLabels counts the labels as written, over all rows.
	RawLabels map[string]int
	// Labelled is the number of labelled images found (the samples).
	Labelled int
}

// OpenLegend reads a legend (data/legend.csv: user.id,image,emotion) and
// matches it with the images folder. Labels are case-folded; repeated rows
// with the same label are kept once; images listed with different labels,
// rows with unsafe names or unknown labels, and rows whose image is missing
// are left out and reported in Skipped and Legend. Only a legend that cannot
// be parsed is an error.
func OpenLegend(legendPath, imagesDir string, opt LegendOptions) (*Dataset, error) {
	f, err := os.Open(legendPath)
	if err != nil {
		return nil, fmt.Errorf("legend: %w", err)
	}
	defer f.Close()
	lg, err := ReadLegend(f, legendPath)
	if err != nil {
		return nil, err
	}
	st, err := os.Stat(imagesDir)
	if err != nil {
		return nil, fmt.Errorf("images folder: %w", err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("images folder %s is not a directory", imagesDir)
	}
	files, odd, err := listFiles(imagesDir)
	if err != nil {
		return nil, err
	}
	return buildLegendDataset(lg, imagesDir, files, odd, opt)
}

// listFiles returns the regular files (and links to them) under dir as
// slash-separated relative paths, skipping hidden entries. Entries that a
// legend row might name but that are no readable file (folders, broken
// links, pipes, folders that cannot be listed) are returned in odd with the
// reason, so that such a row is reported for what it is.
func listFiles(dir string) (files map[string]bool, odd map[string]string, err error) {
	files, odd = map[string]bool{}, map[string]string{}
	err = filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		rel, rerr := filepath.Rel(dir, p)
		if rerr != nil {
			return rerr
		}
		rel = filepath.ToSlash(rel)
		if err != nil {
			if p == dir {
				return fmt.Errorf("listing %s: %w", p, err)
			}
			odd[rel] = fmt.Sprintf("is a folder that cannot be read (%v)", err)
			if e != nil && e.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if p != dir && strings.HasPrefix(e.Name(), ".") {
			if e.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if e.IsDir() {
			if p != dir {
				odd[rel] = "is a folder, not an image file"
			}
			return nil
		}
		if e.Type()&fs.ModeSymlink != 0 {
			st, err := os.Stat(p)
			switch {
			case err != nil:
				target, _ := os.Readlink(p)
				odd[rel] = fmt.Sprintf("is a symbolic link to %s, which cannot be opened (%v)", target, unwrapPathError(err))
				return nil
			case st.IsDir():
				odd[rel] = "is a link to a folder, not an image file"
				return nil
			case !st.Mode().IsRegular():
				odd[rel] = fmt.Sprintf("is a link to a %s, not an image file", fileTypeName(st.Mode()))
				return nil
			}
		} else if !e.Type().IsRegular() {
			odd[rel] = fmt.Sprintf("is a %s, not an image file", fileTypeName(e.Type()))
			return nil
		}
		files[rel] = true
		return nil
	})
	return files, odd, err
}

// unwrapPathError drops the path an *fs.PathError repeats.
func unwrapPathError(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// fileTypeName names a non-regular file type for messages.
func fileTypeName(m fs.FileMode) string {
	switch {
	case m&fs.ModeNamedPipe != 0:
		return "named pipe"
	case m&fs.ModeSocket != 0:
		return "socket"
	case m&fs.ModeDevice != 0:
		return "device"
	}
	return "special file"
}

func buildLegendDataset(lg *Legend, imagesDir string, files map[string]bool, odd map[string]string, opt LegendOptions) (*Dataset, error) {
	rep := &LegendReport{File: lg.File, Rows: len(lg.Rows), RawLabels: map[string]int{}}
	accepted := map[string]bool{}
	if !opt.AnyLabel {
		classes := opt.Classes
		if classes == nil {
			classes = Emotions()
		}
		for _, c := range classes {
			accepted[strings.ToLower(strings.TrimSpace(c))] = true
		}
	}
	type entry struct {
		name  string
		rows  []LegendRow
		valid bool
	}
	var order []*entry
	byName := map[string]*entry{}
	for _, row := range lg.Rows {
		rep.RawLabels[row.RawLabel]++
		name, err := CheckImageName(row.Image)
		if err != nil {
			rep.Rejected = append(rep.Rejected, Skip{Path: row.Image, Line: row.Line, Kind: SkipUnsafeName, Reason: err.Error()})
			continue
		}
		e := byName[name]
		if e == nil {
			e = &entry{name: name}
			byName[name] = e
			order = append(order, e)
		}
		e.rows = append(e.rows, row)
	}
	rep.UniqueImages = len(order)

	lower := map[string]string{}
	for f := range files {
		lower[strings.ToLower(f)] = f
	}
	labelSet := map[string]bool{}
	type kept struct {
		name, label string
	}
	var keep []kept
	for _, e := range order {
		first := e.rows[0]
		conflict := false
		for _, r := range e.rows[1:] {
			if r.Label != first.Label {
				conflict = true
			}
		}
		if conflict {
			c := Conflict{Image: e.name}
			seen := map[string]bool{}
			for _, r := range e.rows {
				c.Lines = append(c.Lines, r.Line)
				if !seen[r.Label] {
					seen[r.Label] = true
					c.Labels = append(c.Labels, r.Label)
				}
			}
			rep.Conflicts = append(rep.Conflicts, c)
			continue
		}
		for _, r := range e.rows[1:] {
			rep.Duplicates = append(rep.Duplicates, DuplicateRow{Image: e.name, Line: r.Line, FirstLine: first.Line})
		}
		switch {
		case first.Label == "":
			rep.Rejected = append(rep.Rejected, Skip{Path: e.name, Line: first.Line, Kind: SkipBadLabel, Reason: "the row has no label"})
			continue
		case !opt.AnyLabel && !accepted[first.Label]:
			rep.Rejected = append(rep.Rejected, Skip{Path: e.name, Line: first.Line, Kind: SkipUnknownLabel,
				Reason: fmt.Sprintf("label %q is not one of %s", first.RawLabel, strings.Join(sortedKeys(accepted), ", "))})
			continue
		}
		if why, ok := odd[e.name]; ok && !files[e.name] {
			rep.Unusable = append(rep.Unusable, Skip{Path: filepath.Join(imagesDir, filepath.FromSlash(e.name)), Line: first.Line, Kind: SkipUnreadable, Reason: why})
			continue
		}
		if !files[e.name] {
			reason := "listed in the legend but not in the images folder"
			if alt, ok := lower[strings.ToLower(e.name)]; ok {
				reason += fmt.Sprintf(" (%s differs only in letter case)", alt)
			}
			rep.Missing = append(rep.Missing, Skip{Path: filepath.Join(imagesDir, filepath.FromSlash(e.name)), Line: first.Line, Kind: SkipMissing, Reason: reason})
			continue
		}
		labelSet[first.Label] = true
		keep = append(keep, kept{e.name, first.Label})
	}
	for f := range files {
		if byName[f] == nil {
			rep.Unlisted = append(rep.Unlisted, f)
		}
	}
	sort.Strings(rep.Unlisted)

	var classes []string
	if opt.AnyLabel {
		classes = sortedKeys(labelSet)
	} else {
		classes = sortedKeys(accepted)
	}
	index := map[string]int{}
	for i, c := range classes {
		index[c] = i
	}
	d := &Dataset{Classes: classes, Legend: rep, Root: imagesDir}
	for _, k := range keep {
		d.Samples = append(d.Samples, Sample{
			Path:    filepath.Join(imagesDir, filepath.FromSlash(k.name)),
			Name:    k.name,
			Label:   index[k.label],
			Subject: SubjectOf(k.name),
		})
	}
	rep.Labelled = len(d.Samples)
	for _, c := range rep.Conflicts {
		d.Skipped = append(d.Skipped, Skip{Path: filepath.Join(imagesDir, filepath.FromSlash(c.Image)), Line: c.Lines[0], Kind: SkipConflict,
			Reason: fmt.Sprintf("listed with different labels %s on lines %s", strings.Join(c.Labels, ", "), joinInts(c.Lines))})
	}
	d.Skipped = append(d.Skipped, rep.Rejected...)
	d.Skipped = append(d.Skipped, rep.Missing...)
	d.Skipped = append(d.Skipped, rep.Unusable...)
	return d, nil
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func joinInts(v []int) string {
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = fmt.Sprint(x)
	}
	return strings.Join(s, ", ")
}

// KerasExtensions are the file endings flow_from_directory accepts
// (keras-preprocessing 1.1.2 matches them case-insensitively, without a dot).
func KerasExtensions() []string {
	return []string{"png", "jpg", "jpeg", "bmp", "ppm", "tif", "tiff"}
}

// DirOptions controls OpenDir.
type DirOptions struct {
	// Extensions are the accepted file endings; nil means KerasExtensions().
	Extensions []string
	// FollowLinks descends into symbolically linked folders inside a class.
	FollowLinks bool
}

// OpenDir reads a Keras directory layout (dir/<class>/...images) with
// flow_from_directory's rules: the classes are the sorted names of the
// sub-folders (case-sensitive code-point order, hidden ones included); each
// class's files are listed recursively, folders in sorted path order and
// files sorted within each, keeping names that end with an accepted
// extension (case-insensitively).
func OpenDir(dir string, opt DirOptions) (*Dataset, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("layout: %w", err)
	}
	exts := opt.Extensions
	if exts == nil {
		exts = KerasExtensions()
	}
	d := &Dataset{Root: dir}
	for _, e := range entries {
		p := filepath.Join(dir, e.Name())
		if st, err := os.Stat(p); err == nil && st.IsDir() {
			d.Classes = append(d.Classes, e.Name())
		}
	}
	sort.Strings(d.Classes)
	for label, class := range d.Classes {
		files, err := walkClass(filepath.Join(dir, class), exts, opt.FollowLinks)
		if err != nil {
			return nil, err
		}
		for _, rel := range files {
			d.Samples = append(d.Samples, Sample{
				Path:    filepath.Join(dir, class, filepath.FromSlash(rel)),
				Name:    rel,
				Label:   label,
				Subject: SubjectOf(rel),
			})
		}
	}
	return d, nil
}

// walkClass lists one class folder as os.walk does, sorted by folder path
// and then by file name.
func walkClass(root string, exts []string, follow bool) ([]string, error) {
	type group struct {
		dir   string
		files []string
	}
	var groups []group
	var walk func(dir string, depth int) error
	walk = func(dir string, depth int) error {
		if depth > 64 {
			return fmt.Errorf("layout: %s: folders nested too deep (a link loop?)", dir)
		}
		entries, err := os.ReadDir(dir)
		if err != nil {
			return fmt.Errorf("layout: %w", err)
		}
		g := group{dir: dir}
		var subdirs []string
		for _, e := range entries {
			p := filepath.Join(dir, e.Name())
			isDir := e.IsDir()
			isLink := e.Type()&fs.ModeSymlink != 0
			if isLink {
				if st, err := os.Stat(p); err == nil && st.IsDir() {
					isDir = true
				}
			}
			if isDir {
				if !isLink || follow {
					subdirs = append(subdirs, p)
				}
				continue
			}
			if hasExt(e.Name(), exts) {
				g.files = append(g.files, e.Name())
			}
		}
		sort.Strings(g.files)
		groups = append(groups, g)
		for _, s := range subdirs {
			if err := walk(s, depth+1); err != nil {
				return err
			}
		}
		return nil
	}
	if err := walk(root, 0); err != nil {
		return nil, err
	}
	sort.SliceStable(groups, func(i, j int) bool { return groups[i].dir < groups[j].dir })
	var out []string
	for _, g := range groups {
		rel, err := filepath.Rel(root, g.dir)
		if err != nil {
			return nil, err
		}
		for _, f := range g.files {
			out = append(out, path.Join(filepath.ToSlash(rel), f))
		}
	}
	return out, nil
}

func hasExt(name string, exts []string) bool {
	l := strings.ToLower(name)
	for _, e := range exts {
		if strings.HasSuffix(l, strings.ToLower(strings.TrimPrefix(e, "."))) {
			return true
		}
	}
	return false
}
