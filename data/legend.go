package data

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"path"
	"path/filepath"
	"strings"
)

// LegendRow is one data row of a legend file.
type LegendRow struct {
	// Line is the 1-based line number where the row starts.
	Line int
	// Image is the file name as written (surrounding spaces removed).
	Image string
	// Label is the case-folded, trimmed label; RawLabel is as written.
	Label    string
	RawLabel string
}

// Legend is a parsed legend file: image names and labels. The user.id
// column, and any other column, is read past and dropped.
type Legend struct {
	// File names the source in messages.
	File string
	// Rows are the data rows in file order.
	Rows []LegendRow
}

// labelColumns and imageColumns are the accepted header names.
var (
	imageColumns = []string{"image", "filename", "file"}
	labelColumns = []string{"emotion", "label"}
)

// ReadLegend parses a legend in CSV form: a header naming at least the image
// and emotion columns (user.id and others may be present), then one row per
// image. It accepts a UTF-8 byte-order mark, CRLF line ends, quoted fields
// and blank lines. A row whose field count differs from the header's, a bad
// quote, or a file that is not text is an error naming file and line.
func ReadLegend(r io.Reader, file string) (*Legend, error) {
	br := bufio.NewReader(r)
	if err := skipBOM(br, file); err != nil {
		return nil, err
	}
	cr := csv.NewReader(br)
	cr.FieldsPerRecord = -1
	cr.ReuseRecord = false
	header, err := cr.Read()
	if err == io.EOF {
		return nil, fmt.Errorf("%s: empty file, want a header with the columns image and emotion", file)
	}
	if err != nil {
		return nil, wrapCSVError(file, err)
	}
	imgCol, lblCol := -1, -1
	for i, h := range header {
		h = strings.ToLower(strings.TrimSpace(h))
		if imgCol < 0 && contains(imageColumns, h) {
			imgCol = i
		}
		if lblCol < 0 && contains(labelColumns, h) {
			lblCol = i
		}
	}
	if imgCol < 0 || lblCol < 0 {
		return nil, fmt.Errorf("%s:1: header must name the columns image and emotion, got %q", file, header)
	}
	lg := &Legend{File: file}
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, wrapCSVError(file, err)
		}
		line, _ := cr.FieldPos(0)
		if len(rec) != len(header) {
			what := "missing"
			if len(rec) > len(header) {
				what = "extra"
			}
			return nil, fmt.Errorf("%s:%d: %s columns: %d fields, the header has %d (%s)", file, line, what, len(rec), len(header), strings.Join(header, ","))
		}
		raw := rec[lblCol]
		lg.Rows = append(lg.Rows, LegendRow{
			Line:     line,
			Image:    strings.TrimSpace(rec[imgCol]),
			Label:    strings.ToLower(strings.TrimSpace(raw)),
			RawLabel: raw,
		})
	}
	return lg, nil
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// skipBOM drops a UTF-8 byte-order mark and rejects UTF-16 and binary input
// with a clear message.
func skipBOM(br *bufio.Reader, file string) error {
	head, _ := br.Peek(4)
	switch {
	case bytes.HasPrefix(head, []byte{0xEF, 0xBB, 0xBF}):
		_, err := br.Discard(3)
		return err
	case bytes.HasPrefix(head, []byte{0xFF, 0xFE}), bytes.HasPrefix(head, []byte{0xFE, 0xFF}):
		return fmt.Errorf("%s: UTF-16 text is not supported; save the legend as UTF-8", file)
	case bytes.IndexByte(head, 0) >= 0:
		return fmt.Errorf("%s: not a text file (NUL byte at the start)", file)
	}
	return nil
}

func wrapCSVError(file string, err error) error {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		return fmt.Errorf("%s:%d: column %d: %w", file, pe.Line, pe.Column, pe.Err)
	}
	return fmt.Errorf("%s: %w", file, err)
}

// CheckImageName rejects a legend name that is empty or that would leave the
// images folder: absolute paths, drive letters, backslashes, ".." steps and
// NUL bytes. The returned name is cleaned, with forward slashes.
func CheckImageName(name string) (string, error) {
	switch {
	case name == "":
		return "", errors.New("empty image name")
	case strings.ContainsRune(name, 0):
		return "", errors.New("image name contains a NUL byte")
	case strings.Contains(name, `\`):
		return "", fmt.Errorf("image name %q contains a backslash", name)
	case strings.HasPrefix(name, "/") || filepath.IsAbs(name) || filepath.VolumeName(name) != "" || (len(name) >= 2 && name[1] == ':'):
		return "", fmt.Errorf("image name %q is an absolute path", name)
	}
	clean := path.Clean(name)
	if !filepath.IsLocal(clean) || clean == "." {
		return "", fmt.Errorf("image name %q leaves the images folder", name)
	}
	for _, part := range strings.Split(name, "/") {
		if part == ".." {
			return "", fmt.Errorf("image name %q leaves the images folder", name)
		}
	}
	return clean, nil
}
