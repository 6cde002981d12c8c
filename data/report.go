package data

import (
	"fmt"
	"io"
	"sort"
	"strings"
)

// legendExamples bounds the names a legend report shows per list.
const legendExamples = 10

// legendLabels bounds the distinct labels a legend report shows.
const legendLabels = 24

// WriteLegendReport writes what OpenLegend found in a legend, bounded
// whatever the legend's size: counts, a few examples of conflicting and
// unlisted images, and the labels as written (the most frequent ones when
// there are many). The rows left out are in the dataset's Skipped, for
// WriteSkipSummary.
func WriteLegendReport(w io.Writer, r *LegendReport) error {
	if r == nil {
		return nil
	}
	var b strings.Builder
	fmt.Fprintf(&b, "legend %s: %d rows, %d distinct images, %d labelled images found\n", r.File, r.Rows, r.UniqueImages, r.Labelled)
	if len(r.Duplicates) > 0 {
		fmt.Fprintf(&b, "  %d duplicate rows (same image, same label) kept once\n", len(r.Duplicates))
	}
	if n := len(r.Rejected) + len(r.Missing) + len(r.Unusable); n > 0 {
		fmt.Fprintf(&b, "  %d rows unusable: %d rejected (bad name or label), %d without an image, %d naming no readable file (listed under skipped)\n",
			n, len(r.Rejected), len(r.Missing), len(r.Unusable))
	}
	if len(r.Conflicts) > 0 {
		fmt.Fprintf(&b, "  %d images listed with different labels were left out:", len(r.Conflicts))
		parts := make([]string, 0, legendExamples)
		for _, c := range r.Conflicts[:min(len(r.Conflicts), legendExamples)] {
			parts = append(parts, clip(fmt.Sprintf("%s (%s, lines %s)", c.Image, strings.Join(c.Labels, " vs "), joinInts(c.Lines)), maxReportLine))
		}
		b.WriteString(" " + strings.Join(parts, "; "))
		if len(r.Conflicts) > legendExamples {
			fmt.Fprintf(&b, "; ... (%d more)", len(r.Conflicts)-legendExamples)
		}
		b.WriteString("\n")
	}
	if len(r.Unlisted) > 0 {
		fmt.Fprintf(&b, "  %d images have no legend row (not used): %s", len(r.Unlisted), strings.Join(r.Unlisted[:min(len(r.Unlisted), legendExamples)], ", "))
		if len(r.Unlisted) > legendExamples {
			fmt.Fprintf(&b, ", ... (%d more)", len(r.Unlisted)-legendExamples)
		}
		b.WriteString("\n")
	}
	if mixed := mixedCaseLabels(r.RawLabels); len(mixed) > 0 {
		fmt.Fprintf(&b, "  labels written in several cases, merged: %s\n", strings.Join(mixed, "; "))
	}
	if len(r.RawLabels) > 0 {
		labels := make([]string, 0, len(r.RawLabels))
		for l := range r.RawLabels {
			labels = append(labels, l)
		}
		more := 0
		if len(labels) > legendLabels {
			// Keep the most frequent labels (ties by name), then show them sorted.
			sort.Slice(labels, func(i, j int) bool {
				ci, cj := r.RawLabels[labels[i]], r.RawLabels[labels[j]]
				return ci > cj || (ci == cj && labels[i] < labels[j])
			})
			more = len(labels) - legendLabels
			labels = labels[:legendLabels]
		}
		sort.Strings(labels)
		parts := make([]string, len(labels))
		for i, l := range labels {
			shown := clip(l, 40)
			if strings.TrimSpace(l) == "" {
				shown = "(empty)"
			}
			parts[i] = fmt.Sprintf("%s %d", shown, r.RawLabels[l])
		}
		fmt.Fprintf(&b, "  labels as written: %s", strings.Join(parts, ", "))
		if more > 0 {
			fmt.Fprintf(&b, ", ... (%d more distinct labels)", more)
		}
		b.WriteString("\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// mixedCaseLabels lists the labels written in several ways ("happiness
// (HAPPINESS, happiness)"), which are one class; at most legendExamples.
func mixedCaseLabels(raw map[string]int) []string {
	folded := map[string][]string{}
	for l := range raw {
		k := strings.ToLower(strings.TrimSpace(l))
		folded[k] = append(folded[k], l)
	}
	var mixed []string
	for k, v := range folded {
		if len(v) > 1 {
			sort.Strings(v)
			mixed = append(mixed, clip(fmt.Sprintf("%s (%s)", k, strings.Join(v, ", ")), 100))
		}
	}
	sort.Strings(mixed)
	if len(mixed) > legendExamples {
		mixed = append(mixed[:legendExamples], fmt.Sprintf("... (%d more)", len(mixed)-legendExamples))
	}
	return mixed
}
