package train

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/fertorch/fertorch/data"
	"github.com/fertorch/fertorch/internal/atomicfile"
)

// runFiles lists the files of dir that a training run writes there.
func runFiles(dir string) ([]string, error) {
	files, err := filepath.Glob(filepath.Join(dir, "epoch-[0-9]*-val_acc-*.safetensors"))
	if err != nil {
		return nil, err
	}
	for _, name := range []string{LastCheckpoint, BestCheckpoint, EffectiveConfig, HistoryCSV, HistoryJSON, CurvesPNG, ValidationReport, data.SkipListName} {
		path := filepath.Join(dir, name)
		if _, err := os.Lstat(path); err == nil {
			files = append(files, path)
		}
	}
	return files, nil
}

// claimRunFolder makes sure a new run does not silently replace an earlier
// run's checkpoints in dir: it refuses the folder, or with overwrite removes
// the earlier run's files (and only those).
func claimRunFolder(dir string, overwrite bool) error {
	files, err := runFiles(dir)
	if err != nil {
		return fmt.Errorf("run folder %s: %w", dir, err)
	}
	checkpoints := 0
	for _, f := range files {
		if strings.HasSuffix(f, ".safetensors") {
			checkpoints++
		}
	}
	if checkpoints == 0 {
		return nil
	}
	if !overwrite {
		return fmt.Errorf("%w: %s has %d checkpoint files; continue that run with `fer train --resume %s`, choose another --output, or start over with --overwrite", ErrRunExists, dir, checkpoints, dir)
	}
	for _, f := range files {
		if err := os.Remove(f); err != nil {
			return fmt.Errorf("--overwrite: %w", err)
		}
	}
	return nil
}

// prepareFolder makes the run folder and writes what a run writes there
// before training: stale temporaries removed, the list of skipped images
// and the effective config.
func (r *run) prepareFolder() error {
	if err := os.MkdirAll(r.cfg.Output, 0o755); err != nil {
		return fmt.Errorf("output folder: %w", err)
	}
	if err := r.removeStaleTemporaries(); err != nil {
		return err
	}
	if err := r.reportSkipped(); err != nil {
		return err
	}
	return r.cfg.Save(filepath.Join(r.cfg.Output, EffectiveConfig))
}

// removeStaleTemporaries deletes the temporary files that a run killed
// during a save left in its folder (a checkpoint's can be hundreds of MB),
// saying what it removed.
func (r *run) removeStaleTemporaries() error {
	removed, err := atomicfile.RemoveStale(r.cfg.Output)
	if err != nil {
		return err
	}
	if len(removed) > 0 {
		names := make([]string, len(removed))
		for i, p := range removed {
			names[i] = filepath.Base(p)
		}
		r.printf("removed %d temporary files an interrupted save left: %s\n", len(removed), strings.Join(names, ", "))
	}
	return nil
}

// reportSkipped prints a summary of the images the run could not use and
// writes the full list into the run folder (an empty list when there were
// none, so that it never describes an earlier run).
func (r *run) reportSkipped() error {
	list := filepath.Join(r.cfg.Output, data.SkipListName)
	if err := data.WriteSkipList(list, r.skipped); err != nil {
		return err
	}
	if len(r.skipped) == 0 {
		return nil
	}
	return data.WriteSkipSummary(r.log, r.skipped, list)
}
