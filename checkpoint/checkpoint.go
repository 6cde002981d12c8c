// Package checkpoint is fertorch's checkpoint file format, shared by the
// trainer (which writes and resumes checkpoints) and inference (which only
// reads the model and what it needs to prepare inputs).
//
// A checkpoint is a safetensors file. Model parameters keep their
// torchvision names, so a weights-only checkpoint loads in PyTorch with
// safetensors.torch.load_file + load_state_dict; a full checkpoint adds the
// optimizer's tensors under "optimizer.". The metadata carries the run
// state as JSON and a SHA-256 over that state and every tensor, checked on
// load, so a truncated or corrupted file is refused. This package treats
// the state as a JSON document: its owner (train.State) decodes all of it,
// inference decodes the few fields it reads.
package checkpoint

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/fertorch/fertorch/internal/atomicfile"
	"github.com/fertorch/fertorch/torch/tensorfile"
)

const (
	metaState       = "fertorch.state"
	metaDigest      = "fertorch.sha256"
	optimizerPrefix = "optimizer."
)

// Version is the checkpoint format version this fertorch writes and reads;
// the state's "version" field holds it.
const Version = 1

// Checkpoint kinds (the state's "kind" field).
const (
	// KindFull can resume training: model, optimizer and loop state.
	KindFull = "full"
	// KindWeights holds the model and what evaluation needs.
	KindWeights = "weights"
)

// ErrCorrupt is wrapped by every error about a damaged checkpoint.
var ErrCorrupt = errors.New("checkpoint is damaged")

// digest hashes the state JSON and every tensor (name, dtype, shape, data)
// in name order.
func digest(stateJSON []byte, entries []tensorfile.Entry) string {
	h := sha256.New()
	var n [8]byte
	write := func(b []byte) {
		binary.LittleEndian.PutUint64(n[:], uint64(len(b)))
		h.Write(n[:])
		h.Write(b)
	}
	write(stateJSON)
	idx := make([]int, len(entries))
	for i := range idx {
		idx[i] = i
	}
	sort.Slice(idx, func(a, b int) bool { return entries[idx[a]].Name < entries[idx[b]].Name })
	for _, i := range idx {
		e := &entries[i]
		write([]byte(e.Name))
		write([]byte(e.DType.String()))
		for _, d := range e.Shape {
			binary.LittleEndian.PutUint64(n[:], uint64(d))
			h.Write(n[:])
		}
		write(e.Data)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// Save writes the model entries (and optimizer entries, named by parameter,
// for a full checkpoint) with the state JSON to path atomically. The state
// must carry "version": Version.
func Save(path string, stateJSON []byte, model, optimizer []tensorfile.Entry) error {
	entries := append([]tensorfile.Entry(nil), model...)
	for _, e := range optimizer {
		e.Name = optimizerPrefix + e.Name
		entries = append(entries, e)
	}
	meta := map[string]string{
		metaState:  string(stateJSON),
		metaDigest: digest(stateJSON, entries),
	}
	f, err := atomicfile.Create(path)
	if err != nil {
		return err
	}
	file := &tensorfile.File{Entries: entries, Metadata: meta}
	if _, err := file.WriteSafetensors(f); err != nil {
		f.Abort()
		return fmt.Errorf("checkpoint %s: %w", path, err)
	}
	return f.Commit()
}

// File is a checkpoint read back and verified: the state JSON, the model
// entries and the optimizer entries (names without the "optimizer."
// prefix).
type File struct {
	Path      string
	State     json.RawMessage
	Model     *tensorfile.File
	Optimizer []tensorfile.Entry
}

// DecodeState decodes the state JSON into v.
func (f *File) DecodeState(v any) error {
	if err := json.NewDecoder(bytes.NewReader(f.State)).Decode(v); err != nil {
		return fmt.Errorf("%w: %s: state: %v", ErrCorrupt, f.Path, err)
	}
	return nil
}

// Verify checks the checksum of a file that fertorch wrote as a checkpoint;
// it reports false for other files (plain weights), which carry no
// checksum.
func Verify(path string, file *tensorfile.File) (bool, error) {
	stateJSON, ok := file.Metadata[metaState]
	if !ok {
		return false, nil
	}
	want := file.Metadata[metaDigest]
	if got := digest([]byte(stateJSON), file.Entries); got != want {
		return true, fmt.Errorf("%w: %s: checksum mismatch (stored %.12s, computed %.12s): the file was modified or corrupted", ErrCorrupt, path, want, got)
	}
	return true, nil
}

// Read reads and verifies a checkpoint written by Save, and checks its
// format version.
func Read(path string) (*File, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("checkpoint: %w", err)
	}
	if format, err := tensorfile.DetectFileFormat(path); err == nil && (format == tensorfile.FormatPTHZip || format == tensorfile.FormatPTHLegacy) {
		return nil, fmt.Errorf("%s is a PyTorch %s weights file, not a fertorch checkpoint: eval and predict take the .safetensors files `fer train` writes (best.safetensors, last.safetensors); give .pth weights to `fer train --weights`", path, format)
	}
	file, err := tensorfile.ReadSafetensorsFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	isCheckpoint, err := Verify(path, file)
	if err != nil {
		return nil, err
	}
	if !isCheckpoint {
		return nil, fmt.Errorf("%s: not a fertorch checkpoint (no %q metadata); to start training from plain weights use `fer train --weights`", path, metaState)
	}
	f := &File{Path: path, State: json.RawMessage(file.Metadata[metaState]), Model: &tensorfile.File{Metadata: file.Metadata}}
	var head struct {
		Version int `json:"version"`
	}
	if err := f.DecodeState(&head); err != nil {
		return nil, err
	}
	if head.Version != Version {
		return nil, fmt.Errorf("%s: checkpoint format version %d, this fertorch reads version %d", path, head.Version, Version)
	}
	for _, e := range file.Entries {
		if name, ok := strings.CutPrefix(e.Name, optimizerPrefix); ok {
			e.Name = name
			f.Optimizer = append(f.Optimizer, e)
		} else {
			f.Model.Entries = append(f.Model.Entries, e)
		}
	}
	return f, nil
}

// maxHeader bounds the safetensors header ReadState accepts.
const maxHeader = 100 << 20

// ReadState reads only the state JSON of a checkpoint, from the file's
// header, without reading or verifying its tensors (Read does both): a
// quick look at a run's settings before the whole file is needed.
func ReadState(path string) (json.RawMessage, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("checkpoint: %w", err)
	}
	defer f.Close()
	var n uint64
	if err := binary.Read(f, binary.LittleEndian, &n); err != nil {
		return nil, fmt.Errorf("%w: %s: reading the header size: %v", ErrCorrupt, path, err)
	}
	if n == 0 || n > maxHeader {
		return nil, fmt.Errorf("%w: %s: header of %d bytes", ErrCorrupt, path, n)
	}
	raw := make([]byte, n)
	if _, err := io.ReadFull(f, raw); err != nil {
		return nil, fmt.Errorf("%w: %s: reading the header: %v", ErrCorrupt, path, err)
	}
	var head struct {
		Metadata map[string]string `json:"__metadata__"`
	}
	if err := json.Unmarshal(raw, &head); err != nil {
		return nil, fmt.Errorf("%w: %s: header: %v", ErrCorrupt, path, err)
	}
	state, ok := head.Metadata[metaState]
	if !ok {
		return nil, fmt.Errorf("%s: not a fertorch checkpoint (no %q metadata)", path, metaState)
	}
	return json.RawMessage(state), nil
}
