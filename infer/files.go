package infer

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/fertorch/fertorch/data"
)

// gatherFiles lists the files in paths (files, or folders searched
// recursively, hidden entries left out) as samples to predict.
func gatherFiles(paths []string) ([]data.Sample, error) {
	var samples []data.Sample
	for _, root := range paths {
		st, err := os.Stat(root)
		if err != nil {
			return nil, err
		}
		if !st.IsDir() {
			samples = append(samples, data.Sample{Path: root, Name: root})
			continue
		}
		err = filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() && strings.HasPrefix(d.Name(), ".") && path != root {
				return filepath.SkipDir
			}
			if !d.IsDir() && !strings.HasPrefix(d.Name(), ".") {
				samples = append(samples, data.Sample{Path: path, Name: path})
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	if len(samples) == 0 {
		return nil, fmt.Errorf("no files found in %v", paths)
	}
	return samples, nil
}
