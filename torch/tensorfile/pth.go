package tensorfile

import (
	"archive/zip"
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/big"
	"sort"
	"strconv"
	"strings"

	"github.com/nlpodyssey/gopickle/types"
)

// PTHOptions selects what to read from a .pth file whose top level is not a
// plain state dict, such as a training checkpoint
// {"state_dict": {...}, "epoch": 3}.
type PTHOptions struct {
	// Key selects a nested dict to read instead of the top level, e.g.
	// "state_dict" or "model"; "/" separates levels ("model/state_dict").
	Key string
	// Flatten reads every tensor below the selected level, naming nested
	// ones by joining keys with "." ({"model": {"fc.weight": t}} gives
	// "model.fc.weight"). Values that are not tensors are left out and
	// listed in File.Skipped. Without Flatten, the selected dict must hold
	// only tensors.
	Flatten bool
}

// legacyMagic is the number that starts a non-zip .pth file.
var legacyMagic = func() *big.Int {
	m, _ := new(big.Int).SetString("1950a86a20f9469cfc6c", 16)
	return m
}()

const legacyProtocolVersion = 1001

// maxNestedDepth bounds the nesting of dicts that Flatten descends into.
const maxNestedDepth = 32

// maxDims bounds the number of dimensions of a tensor.
const maxDims = 64

// copySlack is the extra room, beyond twice the file's storage bytes, that
// non-contiguous tensors may take when they are copied to contiguous form.
const copySlack = 16 << 20

// ReadPTHFile reads a PyTorch .pth file in the zip or the legacy format.
// Errors name the file.
func ReadPTHFile(path string, opts PTHOptions) (*File, error) {
	return readPath(path, func(r io.ReaderAt, size int64) (*File, error) {
		return ReadPTH(r, size, opts)
	})
}

// ReadPTH reads a PyTorch .pth file of size bytes from r, in the zip format
// (torch.save since PyTorch 1.6) or the legacy format (earlier versions,
// and torch.save(..., _use_new_zipfile_serialization=False)). The file must
// hold a dict of tensors (see PTHOptions for checkpoints that nest one);
// entries keep the dict's order. size must be the true size of the data:
// the checks that keep a hostile file from claiming more memory than it
// holds rely on it. Storages are read with parallel ReadAt calls.
func ReadPTH(r io.ReaderAt, size int64, opts PTHOptions) (*File, error) {
	var head [512]byte
	n, err := r.ReadAt(head[:], 0)
	if err != nil && err != io.EOF {
		return nil, fmt.Errorf("reading: %w", err)
	}
	switch DetectFormat(head[:n]) {
	case FormatPTHZip:
		return readZipPTH(r, size, opts)
	case FormatPTHLegacy:
		return readLegacyPTH(r, size, opts)
	case FormatSafetensors:
		return nil, errors.New("this is a safetensors file, not a .pth file")
	}
	if n >= 262 && string(head[257:262]) == "ustar" {
		return nil, errors.New("tar-based .pth files (PyTorch before 0.1.10) are not supported; load and re-save the file with a recent PyTorch")
	}
	return nil, errors.New("not a PyTorch .pth file: neither a zip archive nor a pickle with PyTorch's magic number")
}

// storage is one storage of a .pth file: the elements that tensors view.
type storage struct {
	key   string
	dtype DType
	numel int64
	data  []byte // nil until loaded
	// at is where the raw bytes are in the file; they are read once the
	// pickle is done.
	at span
}

// nbytes is the storage's size in bytes (bounded by the file size when
// the storage is registered).
func (st *storage) nbytes() int64 { return st.numel * int64(st.dtype.Size()) }

// storageView is what a persistent ID resolves to: a whole storage, or (in
// old legacy files) a slice of one.
type storageView struct {
	st     *storage
	offset int64 // in elements
	numel  int64
}

// storageClass is a torch.*Storage type named by a persistent ID.
type storageClass struct {
	name  string
	dtype DType
}

// rebuildFunc is one of the allowed torch._utils functions.
type rebuildFunc struct{ name string }

// tensorRef is a tensor as the pickle describes it: a view into a storage.
type tensorRef struct {
	view   *storageView
	offset int64
	shape  []int64
	stride []int64
}

// Call checks the arguments of a rebuild function and returns the tensor
// they describe. Nothing is executed: the arguments are only recorded.
func (f rebuildFunc) Call(args ...any) (any, error) {
	switch f.name {
	case rebuildTensor, rebuildTensorV2:
		// _rebuild_tensor(storage, storage_offset, size, stride)
		// _rebuild_tensor_v2(storage, storage_offset, size, stride,
		//                    requires_grad, backward_hooks[, metadata])
		switch {
		case f.name == rebuildTensor && len(args) != 4,
			f.name == rebuildTensorV2 && len(args) != 6 && len(args) != 7:
			return nil, fmt.Errorf("torch._utils.%s called with %d arguments", f.name, len(args))
		}
		view, ok := args[0].(*storageView)
		if !ok {
			return nil, fmt.Errorf("torch._utils.%s: first argument is %s, not a storage", f.name, describe(args[0]))
		}
		offset, err := pyInt(args[1], "storage offset")
		if err != nil {
			return nil, fmt.Errorf("torch._utils.%s: %w", f.name, err)
		}
		shape, err := pyInts(args[2], "size")
		if err != nil {
			return nil, fmt.Errorf("torch._utils.%s: %w", f.name, err)
		}
		stride, err := pyInts(args[3], "stride")
		if err != nil {
			return nil, fmt.Errorf("torch._utils.%s: %w", f.name, err)
		}
		if len(stride) != len(shape) {
			return nil, fmt.Errorf("torch._utils.%s: size %v and stride %v differ in length", f.name, shape, stride)
		}
		if f.name == rebuildTensorV2 {
			if _, ok := args[4].(bool); !ok {
				return nil, fmt.Errorf("torch._utils.%s: requires_grad is %s, not a bool", f.name, describe(args[4]))
			}
		}
		return &tensorRef{view: view, offset: offset, shape: shape, stride: stride}, nil
	case rebuildParameter, rebuildParameterWithState:
		// _rebuild_parameter(data, requires_grad, backward_hooks)
		// _rebuild_parameter_with_state(data, requires_grad, backward_hooks, state)
		want := 3
		if f.name == rebuildParameterWithState {
			want = 4
		}
		if len(args) != want {
			return nil, fmt.Errorf("torch._utils.%s called with %d arguments, want %d", f.name, len(args), want)
		}
		t, ok := args[0].(*tensorRef)
		if !ok {
			return nil, fmt.Errorf("torch._utils.%s: data is %s, not a tensor", f.name, describe(args[0]))
		}
		return t, nil
	}
	return nil, fmt.Errorf("torch._utils.%s is not supported", f.name)
}

func pyInt(v any, what string) (int64, error) {
	i, ok := v.(int)
	if !ok {
		return 0, fmt.Errorf("%s is %s, not an int", what, describe(v))
	}
	if i < 0 {
		return 0, fmt.Errorf("%s %d is negative", what, i)
	}
	return int64(i), nil
}

func pyInts(v any, what string) ([]int64, error) {
	var items []any
	switch t := v.(type) {
	case *types.Tuple:
		items = *t
	case *types.List:
		items = *t
	default:
		return nil, fmt.Errorf("%s is %s, not a tuple", what, describe(v))
	}
	if len(items) > maxDims {
		return nil, fmt.Errorf("%s has %d dimensions, more than %d", what, len(items), maxDims)
	}
	out := make([]int64, len(items))
	for i, it := range items {
		n, err := pyInt(it, what)
		if err != nil {
			return nil, err
		}
		out[i] = n
	}
	return out, nil
}

// describe names the Python type of an unpickled value, for errors.
func describe(v any) string {
	switch t := v.(type) {
	case nil:
		return "None"
	case bool:
		return "a bool"
	case int, *big.Int:
		return "an int"
	case float64:
		return "a float"
	case string:
		return "a str"
	case []byte:
		return "bytes"
	case *types.ByteArray:
		return "a bytearray"
	case *types.Tuple:
		return "a tuple"
	case *types.List:
		return "a list"
	case *types.Set, *types.FrozenSet:
		return "a set"
	case *types.Dict, *types.OrderedDict:
		return "a dict"
	case *tensorRef:
		return "a tensor"
	case *storageView:
		return "a storage"
	case storageClass:
		return "torch." + t.name
	case rebuildFunc:
		return "torch._utils." + t.name
	}
	return fmt.Sprintf("an unsupported object (%T)", v)
}

// pthLoader holds the state of reading one .pth file.
type pthLoader struct {
	legacy   bool
	size     int64
	storages map[string]*storage
	// locate finds a new storage's data in a zip file; nil for legacy
	// files.
	locate func(st *storage) error
}

func (l *pthLoader) findClass(module, name string) (any, error) {
	if err := checkGlobal(module, name); err != nil {
		return nil, err
	}
	switch module {
	case "torch._utils":
		return rebuildFunc{name: name}, nil
	case "torch":
		d, _ := dtypeFromStorage(name)
		return storageClass{name: name, dtype: d}, nil
	case "collections":
		return &types.OrderedDictClass{}, nil
	}
	return nil, &ForbiddenGlobalError{Module: module, Name: name}
}

// persistentLoad resolves a persistent ID:
// ('storage', storage_type, key, location, numel), with a sixth element
// view_metadata (None or (view_key, offset, view_size)) in legacy files.
func (l *pthLoader) persistentLoad(pid any) (any, error) {
	tp, ok := pid.(*types.Tuple)
	if !ok {
		return nil, fmt.Errorf("persistent ID is %s, not a tuple", describe(pid))
	}
	t := *tp
	if len(t) == 0 || t[0] != "storage" {
		if len(t) > 0 && t[0] == "module" {
			return nil, errors.New("the file holds a pickled nn.Module, not a state dict; save model.state_dict() instead")
		}
		return nil, errors.New("persistent ID is not a ('storage', ...) tuple")
	}
	// Legacy files add view metadata as a sixth element.
	if len(t) != 5 && !(l.legacy && len(t) == 6) {
		return nil, fmt.Errorf("storage persistent ID has %d elements, want 5 (or 6 in a legacy file)", len(t))
	}
	class, ok := t[1].(storageClass)
	if !ok {
		return nil, fmt.Errorf("storage type is %s, not a torch.*Storage", describe(t[1]))
	}
	key, ok := t[2].(string)
	if !ok {
		return nil, fmt.Errorf("storage key is %s, not a str", describe(t[2]))
	}
	if _, ok := t[3].(string); !ok {
		return nil, fmt.Errorf("storage %q: location is %s, not a str", key, describe(t[3]))
	}
	numel, err := pyInt(t[4], "storage size")
	if err != nil {
		return nil, fmt.Errorf("storage %q: %w", key, err)
	}
	nbytes, ok := mulInt64(numel, int64(class.dtype.Size()))
	if !ok || nbytes > l.size {
		return nil, fmt.Errorf("storage %q: %d elements of %v do not fit in a file of %d bytes", key, numel, class.dtype, l.size)
	}
	st := l.storages[key]
	if st == nil {
		st = &storage{key: key, dtype: class.dtype, numel: numel}
		l.storages[key] = st
		if l.locate != nil {
			if err := l.locate(st); err != nil {
				return nil, err
			}
		}
	} else if st.dtype != class.dtype || st.numel != numel {
		return nil, fmt.Errorf("storage %q is declared both as %d x %v and as %d x %v", key, st.numel, st.dtype, numel, class.dtype)
	}
	view := &storageView{st: st, numel: numel}
	if len(t) == 6 && t[5] != nil {
		vm, ok := t[5].(*types.Tuple)
		if !ok || len(*vm) != 3 {
			return nil, fmt.Errorf("storage %q: view metadata is %s, not a (key, offset, size) tuple", key, describe(t[5]))
		}
		off, err := pyInt((*vm)[1], "storage view offset")
		if err != nil {
			return nil, fmt.Errorf("storage %q: %w", key, err)
		}
		n, err := pyInt((*vm)[2], "storage view size")
		if err != nil {
			return nil, fmt.Errorf("storage %q: %w", key, err)
		}
		if end, ok := addInt64(off, n); !ok || end > numel {
			return nil, fmt.Errorf("storage %q: view [%d, %d+%d) lies outside its %d elements", key, off, off, n, numel)
		}
		view.offset, view.numel = off, n
	}
	return view, nil
}

// next scans and unpickles one pickle stream.
func (l *pthLoader) unpickle(src pickleSource, avail int64) (any, error) {
	raw, err := scanPickle(src, avail)
	if err != nil {
		return nil, err
	}
	return unpickle(raw, l.findClass, l.persistentLoad)
}

// readStorages allocates every storage and reads its span of the file, all
// spans in parallel. Spans must not overlap, so that the memory allocated
// never exceeds the size of the file.
func (l *pthLoader) readStorages(r io.ReaderAt) error {
	list := make([]*storage, 0, len(l.storages))
	for _, st := range l.storages {
		list = append(list, st)
	}
	sort.Slice(list, func(i, j int) bool {
		if list[i].at.off != list[j].at.off {
			return list[i].at.off < list[j].at.off
		}
		return list[i].key < list[j].key
	})
	for i := 1; i < len(list); i++ {
		if prev := list[i-1]; prev.at.off+prev.nbytes() > list[i].at.off {
			return fmt.Errorf("%s and %s overlap in the file", prev.at.what, list[i].at.what)
		}
	}
	spans := make([]span, len(list))
	for i, st := range list {
		st.data = make([]byte, st.nbytes())
		st.at.buf = st.data
		spans[i] = st.at
	}
	return readSpans(r, spans)
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// readLegacyPTH reads the legacy format: pickles of the magic number, the
// protocol version, the system info, the object, and the list of storage
// keys; then, for each key, an int64 element count and the raw elements.
func readLegacyPTH(r io.ReaderAt, size int64, opts PTHOptions) (*File, error) {
	cr := &countingReader{r: io.NewSectionReader(r, 0, size)}
	br := bufio.NewReaderSize(cr, 64<<10)
	pos := func() int64 { return cr.n - int64(br.Buffered()) }
	l := &pthLoader{legacy: true, size: size, storages: map[string]*storage{}}
	next := func(what string) (any, error) {
		v, err := l.unpickle(br, size-pos())
		if err != nil {
			return nil, fmt.Errorf("legacy .pth %s: %w", what, err)
		}
		return v, nil
	}

	magic, err := next("magic number")
	if err != nil {
		return nil, err
	}
	if m, ok := magic.(*big.Int); !ok || m.Cmp(legacyMagic) != 0 {
		return nil, errors.New("not a PyTorch .pth file: wrong magic number")
	}
	proto, err := next("protocol version")
	if err != nil {
		return nil, err
	}
	if p, ok := proto.(int); !ok || p != legacyProtocolVersion {
		return nil, fmt.Errorf("unsupported legacy .pth protocol version %v (want %d)", proto, legacyProtocolVersion)
	}
	sysInfo, err := next("system info")
	if err != nil {
		return nil, err
	}
	if items, ok := dictItems(sysInfo); ok {
		for _, kv := range items {
			if kv.key == "little_endian" && kv.value != true {
				return nil, errors.New("the file was written on a big-endian machine, which is not supported")
			}
		}
	} else {
		return nil, fmt.Errorf("legacy .pth system info is %s, not a dict", describe(sysInfo))
	}
	obj, err := next("object")
	if err != nil {
		return nil, err
	}
	keysObj, err := next("storage keys")
	if err != nil {
		return nil, err
	}
	keyList, ok := keysObj.(*types.List)
	if !ok {
		return nil, fmt.Errorf("legacy .pth storage keys are %s, not a list", describe(keysObj))
	}
	// The storages follow the keys: for each, an int64 element count and
	// the elements. The pickle gave every storage's size, so every position
	// is known before anything is read.
	at := pos()
	listed := make(map[string]bool, len(*keyList))
	for _, k := range *keyList {
		key, ok := k.(string)
		if !ok {
			return nil, fmt.Errorf("legacy .pth storage key is %s, not a str", describe(k))
		}
		st := l.storages[key]
		if st == nil {
			return nil, fmt.Errorf("legacy .pth lists storage %q, which no tensor uses", key)
		}
		if listed[key] {
			return nil, fmt.Errorf("legacy .pth lists storage %q twice", key)
		}
		listed[key] = true
		var countBuf [8]byte
		if _, err := r.ReadAt(countBuf[:], at); err != nil {
			return nil, fmt.Errorf("legacy .pth storage %q: reading its element count at byte %d: %w", key, at, noEOF(err))
		}
		count := int64(binary.LittleEndian.Uint64(countBuf[:]))
		if count != st.numel {
			return nil, fmt.Errorf("legacy .pth storage %q: the file holds %d elements, the pickle declares %d", key, count, st.numel)
		}
		at += 8
		if st.nbytes() > size-at {
			return nil, fmt.Errorf("legacy .pth storage %q: %d bytes of %v at byte %d run past the end of the %d-byte file (truncated?)", key, st.nbytes(), st.dtype, at, size)
		}
		st.at = span{what: fmt.Sprintf("legacy .pth storage %q", key), off: at}
		at += st.nbytes()
	}
	var missing []string
	for key := range l.storages {
		if !listed[key] {
			missing = append(missing, key)
		}
	}
	if len(missing) > 0 {
		sort.Strings(missing)
		return nil, fmt.Errorf("legacy .pth storage %q is used by a tensor but has no data", missing[0])
	}
	if err := l.readStorages(r); err != nil {
		return nil, err
	}
	return buildFile(obj, l.storages, opts)
}

func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// readZipPTH reads the zip format: <archive>/data.pkl, whose persistent IDs
// name records <archive>/data/<key> holding raw little-endian storages.
func readZipPTH(r io.ReaderAt, size int64, opts PTHOptions) (*File, error) {
	zr, err := zip.NewReader(r, size)
	if err != nil && !errors.Is(err, zip.ErrInsecurePath) {
		return nil, fmt.Errorf("reading zip archive: %w", err)
	}
	files := make(map[string]*zip.File, len(zr.File))
	var pkls []string
	for _, f := range zr.File {
		files[f.Name] = f
		if strings.HasSuffix(f.Name, "/data.pkl") && strings.Count(f.Name, "/") == 1 {
			pkls = append(pkls, f.Name)
		}
	}
	if len(pkls) == 0 {
		return nil, errors.New("zip archive has no <archive>/data.pkl record: not a PyTorch checkpoint")
	}
	if len(pkls) > 1 {
		sort.Strings(pkls)
		return nil, fmt.Errorf("zip archive has %d data.pkl records (%s): expected one", len(pkls), strings.Join(pkls, ", "))
	}
	prefix := strings.TrimSuffix(pkls[0], "data.pkl")
	if files[prefix+"constants.pkl"] != nil {
		return nil, errors.New("this is a TorchScript archive (torch.jit.save), not a state dict; save model.state_dict() with torch.save instead")
	}
	if bo := files[prefix+"byteorder"]; bo != nil {
		b, err := readZipRecord(bo, 16, size)
		if err != nil {
			return nil, err
		}
		if s := strings.TrimSpace(string(b)); s != "little" {
			return nil, fmt.Errorf("record %s says %q: only little-endian files are supported", bo.Name, s)
		}
	}
	pkl, err := readZipRecord(files[pkls[0]], maxPickleBytes, size)
	if err != nil {
		return nil, err
	}
	l := &pthLoader{size: size, storages: map[string]*storage{}}
	l.locate = func(st *storage) error {
		name := prefix + "data/" + st.key
		f := files[name]
		if f == nil {
			return fmt.Errorf("storage %q: the archive has no record %s", st.key, name)
		}
		if f.UncompressedSize64 != uint64(st.nbytes()) {
			return fmt.Errorf("storage %q: record %s holds %d bytes, but %d elements of %v need %d", st.key, name, f.UncompressedSize64, st.numel, st.dtype, st.nbytes())
		}
		if f.Method != zip.Store {
			return fmt.Errorf("storage %q: record %s is compressed (zip method %d); PyTorch stores tensor data uncompressed, so re-save the file with torch.save", st.key, name, f.Method)
		}
		off, err := f.DataOffset()
		if err != nil {
			return fmt.Errorf("storage %q: record %s: %w", st.key, name, err)
		}
		if f.CompressedSize64 != f.UncompressedSize64 || off < 0 || off > size-st.nbytes() {
			return fmt.Errorf("storage %q: record %s (%d bytes at byte %d) does not fit in the %d-byte file", st.key, name, f.CompressedSize64, off, size)
		}
		st.at = span{what: "storage " + strconv.Quote(st.key) + ": record " + name, off: off, checkCRC: true, crc: f.CRC32}
		return nil
	}
	obj, err := l.unpickle(newBytesSource(pkl), int64(len(pkl)))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", pkls[0], err)
	}
	if err := l.readStorages(r); err != nil {
		return nil, err
	}
	return buildFile(obj, l.storages, opts)
}

// readZipRecord reads a whole record of at most limit bytes, checking its
// declared sizes against the archive and its CRC-32.
func readZipRecord(f *zip.File, limit, fileSize int64) ([]byte, error) {
	if f.UncompressedSize64 > uint64(limit) {
		return nil, fmt.Errorf("record %s holds %d bytes, more than the limit of %d", f.Name, f.UncompressedSize64, limit)
	}
	if f.CompressedSize64 > uint64(fileSize) {
		return nil, fmt.Errorf("record %s declares %d compressed bytes in a file of %d", f.Name, f.CompressedSize64, fileSize)
	}
	switch f.Method {
	case zip.Store:
		if f.CompressedSize64 != f.UncompressedSize64 {
			return nil, fmt.Errorf("record %s is stored uncompressed but declares %d compressed and %d uncompressed bytes", f.Name, f.CompressedSize64, f.UncompressedSize64)
		}
	case zip.Deflate:
		// Deflate cannot compress by more than about 1032:1.
		if f.UncompressedSize64 > 1100*f.CompressedSize64+1024 {
			return nil, fmt.Errorf("record %s declares an impossible compression ratio (%d bytes from %d)", f.Name, f.UncompressedSize64, f.CompressedSize64)
		}
	default:
		return nil, fmt.Errorf("record %s uses unsupported zip compression method %d", f.Name, f.Method)
	}
	rc, err := f.Open()
	if err != nil {
		return nil, fmt.Errorf("record %s: %w", f.Name, err)
	}
	defer rc.Close()
	buf := make([]byte, f.UncompressedSize64)
	if _, err := io.ReadFull(rc, buf); err != nil {
		return nil, fmt.Errorf("record %s: reading %d bytes: %w", f.Name, len(buf), noEOF(err))
	}
	// Reading past the end makes the zip reader verify the size and CRC-32.
	var one [1]byte
	if n, err := rc.Read(one[:]); n != 0 || err != io.EOF {
		if err == nil || err == io.EOF {
			err = errors.New("more data than declared")
		}
		return nil, fmt.Errorf("record %s: %w", f.Name, err)
	}
	return buf, nil
}

// bytesSource is a minimal in-memory pickleSource.
type bytesSource struct {
	b []byte
	i int
}

func newBytesSource(b []byte) *bytesSource { return &bytesSource{b: b} }

func (s *bytesSource) Read(p []byte) (int, error) {
	if s.i >= len(s.b) {
		return 0, io.EOF
	}
	n := copy(p, s.b[s.i:])
	s.i += n
	return n, nil
}

func (s *bytesSource) ReadByte() (byte, error) {
	if s.i >= len(s.b) {
		return 0, io.EOF
	}
	b := s.b[s.i]
	s.i++
	return b, nil
}

// keyValue is one item of an unpickled dict.
type keyValue struct {
	key   any
	value any
}

// dictItems returns the items of a dict or OrderedDict in order, with
// repeated keys resolved as Python does (the last value, at the first
// position).
func dictItems(v any) ([]keyValue, bool) {
	switch d := v.(type) {
	case *types.OrderedDict:
		items := make([]keyValue, 0, d.Len())
		for e := d.List.Front(); e != nil; e = e.Next() {
			if oe, ok := e.Value.(*types.OrderedDictEntry); ok {
				items = append(items, keyValue{oe.Key, oe.Value})
			}
		}
		return items, true
	case *types.Dict:
		items := make([]keyValue, 0, len(*d))
		pos := map[any]int{}
		for _, e := range *d {
			if k, ok := hashable(e.Key); ok {
				if i, seen := pos[k]; seen {
					items[i].value = e.Value
					continue
				}
				pos[k] = len(items)
			}
			items = append(items, keyValue{e.Key, e.Value})
		}
		return items, true
	}
	return nil, false
}

// hashable returns keys that can index a Go map (strings and ints, the only
// keys a state dict uses).
func hashable(k any) (any, bool) {
	switch k.(type) {
	case string, int, bool, float64:
		return k, true
	}
	return nil, false
}

// namedTensor is a tensor found in the unpickled object, with its name.
type namedTensor struct {
	name string
	t    *tensorRef
}

// buildFile turns the unpickled object into entries.
func buildFile(obj any, storages map[string]*storage, opts PTHOptions) (*File, error) {
	sel, where, err := selectKey(obj, opts.Key)
	if err != nil {
		return nil, err
	}
	f := &File{}
	var tensors []namedTensor
	if opts.Flatten {
		w := &flattener{seen: map[any]bool{}, index: map[string]int{}}
		if err := w.walk(sel, "", where, 0); err != nil {
			return nil, err
		}
		tensors, f.Skipped = w.tensors, w.skipped
	} else {
		if tensors, err = flatTensors(sel, where); err != nil {
			return nil, err
		}
	}

	var storageBytes int64
	for _, st := range storages {
		storageBytes += int64(len(st.data))
	}
	budget := 2*storageBytes + copySlack
	f.Entries = make([]Entry, 0, len(tensors))
	for _, nt := range tensors {
		e, err := nt.t.entry(nt.name, &budget)
		if err != nil {
			return nil, err
		}
		f.Entries = append(f.Entries, e)
	}
	return f, nil
}

// selectKey descends into the nested dicts named by key.
func selectKey(obj any, key string) (any, string, error) {
	where := "the file's top level"
	if key == "" {
		return obj, where, nil
	}
	for i, part := range strings.Split(key, "/") {
		items, ok := dictItems(obj)
		if !ok {
			return nil, "", fmt.Errorf("cannot select key %q: %s is %s, not a dict", key, where, describe(obj))
		}
		found := false
		for _, kv := range items {
			if kv.key == part {
				obj, found = kv.value, true
				break
			}
		}
		if !found {
			return nil, "", fmt.Errorf("cannot select key %q: %s has no key %q (it has %s)", key, where, part, keyList(items))
		}
		where = fmt.Sprintf("key %q", strings.Join(strings.Split(key, "/")[:i+1], "/"))
	}
	return obj, where, nil
}

// keyList lists some keys of a dict for an error message.
func keyList(items []keyValue) string {
	const max = 8
	var parts []string
	for i, kv := range items {
		if i == max {
			parts = append(parts, fmt.Sprintf("and %d more", len(items)-max))
			break
		}
		parts = append(parts, fmt.Sprintf("%q", fmt.Sprint(kv.key)))
	}
	if len(parts) == 0 {
		return "no keys"
	}
	return strings.Join(parts, ", ")
}

// flatTensors returns the tensors of a dict that must hold nothing else.
func flatTensors(obj any, where string) ([]namedTensor, error) {
	items, ok := dictItems(obj)
	if !ok {
		if _, isTensor := obj.(*tensorRef); isTensor {
			return nil, fmt.Errorf("%s is a single tensor, not a dict of tensors", where)
		}
		return nil, fmt.Errorf("%s is %s, not a dict of tensors", where, describe(obj))
	}
	var (
		out      []namedTensor
		problems []string
		suggest  string
		best     = -1
	)
	for _, kv := range items {
		name, ok := kv.key.(string)
		if !ok {
			problems = append(problems, fmt.Sprintf("a key is %s, not a str", describe(kv.key)))
			continue
		}
		switch v := kv.value.(type) {
		case *tensorRef:
			out = append(out, namedTensor{name, v})
		default:
			if _, isDict := dictItems(v); isDict {
				n := countTensors(v)
				problems = append(problems, fmt.Sprintf("%q holds a nested dict (%d tensors)", name, n))
				if n > best {
					best, suggest = n, name
				}
			} else {
				problems = append(problems, fmt.Sprintf("%q holds %s", name, describe(v)))
			}
		}
	}
	if len(problems) == 0 {
		return out, nil
	}
	if len(problems) > 6 {
		problems = append(problems[:6], fmt.Sprintf("and %d more", len(problems)-6))
	}
	hint := "read the tensors only with PTHOptions.Flatten"
	if suggest != "" {
		hint = fmt.Sprintf("select a nested dict with PTHOptions.Key (e.g. Key: %q) or read every tensor with PTHOptions.Flatten", suggest)
	}
	return nil, fmt.Errorf("%s is not a flat dict of tensors: %s; %s", where, strings.Join(problems, ", "), hint)
}

// countTensors counts the tensors in nested dicts, for error messages. Each
// dict is counted once, so shared or cyclic dicts cannot make it slow.
func countTensors(v any) int {
	seen := map[any]bool{}
	var count func(v any, depth int) int
	count = func(v any, depth int) int {
		if _, ok := v.(*tensorRef); ok {
			return 1
		}
		items, ok := dictItems(v)
		if !ok || depth >= maxNestedDepth || seen[v] {
			return 0
		}
		seen[v] = true
		n := 0
		for _, kv := range items {
			n += count(kv.value, depth+1)
		}
		return n
	}
	return count(v, 0)
}

// flattener collects every tensor of nested dicts.
type flattener struct {
	seen    map[any]bool
	index   map[string]int
	tensors []namedTensor
	skipped []string
}

func (w *flattener) walk(v any, prefix, where string, depth int) error {
	if t, ok := v.(*tensorRef); ok {
		if prefix == "" {
			return fmt.Errorf("%s is a single tensor, not a dict of tensors", where)
		}
		if _, dup := w.index[prefix]; dup {
			return fmt.Errorf("flattening gives the name %q twice", prefix)
		}
		w.index[prefix] = len(w.tensors)
		w.tensors = append(w.tensors, namedTensor{prefix, t})
		return nil
	}
	items, ok := dictItems(v)
	if !ok {
		if prefix == "" {
			return fmt.Errorf("%s is %s, not a dict of tensors", where, describe(v))
		}
		w.skipped = append(w.skipped, prefix)
		return nil
	}
	if depth >= maxNestedDepth {
		return fmt.Errorf("dicts are nested more than %d levels deep at %q", maxNestedDepth, prefix)
	}
	if w.seen[v] {
		return fmt.Errorf("the dict at %q appears more than once in the file", prefix)
	}
	w.seen[v] = true
	for _, kv := range items {
		var key string
		switch k := kv.key.(type) {
		case string:
			key = k
		case int:
			key = strconv.Itoa(k)
		default:
			return fmt.Errorf("a key under %q is %s, not a str or int", prefix, describe(kv.key))
		}
		name := key
		if prefix != "" {
			name = prefix + "." + key
		}
		if err := w.walk(kv.value, name, where, depth+1); err != nil {
			return err
		}
	}
	return nil
}

// entry materializes a tensor: a contiguous view shares its storage's
// memory, a non-contiguous one is copied to row-major order (charged to
// budget, so that overlapping views of one storage cannot multiply the
// memory a file costs).
func (t *tensorRef) entry(name string, budget *int64) (Entry, error) {
	st := t.view.st
	d := st.dtype
	es := int64(d.Size())
	e := Entry{Name: name, DType: d, Shape: t.shape}
	numel, err := numElements(t.shape)
	if err != nil {
		return e, fmt.Errorf("tensor %q: %w", name, err)
	}
	if numel == 0 {
		e.Data = []byte{}
		return e, nil
	}
	if st.data == nil {
		return e, fmt.Errorf("tensor %q: storage %q has no data", name, st.key)
	}
	// The last element the view touches must lie inside the storage view.
	last := t.offset
	contiguous := true
	expect := int64(1)
	for i := len(t.shape) - 1; i >= 0; i-- {
		step, ok := mulInt64(t.shape[i]-1, t.stride[i])
		if ok {
			last, ok = addInt64(last, step)
		}
		if !ok {
			return e, fmt.Errorf("tensor %q: size %v and stride %v overflow", name, t.shape, t.stride)
		}
		if t.shape[i] != 1 {
			if t.stride[i] != expect {
				contiguous = false
			}
			expect *= t.shape[i] // <= numel, no overflow
		}
	}
	if last >= t.view.numel {
		return e, fmt.Errorf("tensor %q: size %v, stride %v and offset %d reach element %d of storage %q, which has %d", name, t.shape, t.stride, t.offset, last, st.key, t.view.numel)
	}
	base := st.data[t.view.offset*es : (t.view.offset+t.view.numel)*es]
	nbytes, ok := mulInt64(numel, es)
	if !ok {
		return e, fmt.Errorf("tensor %q: size %v of %v is too large", name, t.shape, d)
	}
	if contiguous {
		begin := t.offset * es
		e.Data = base[begin : begin+nbytes : begin+nbytes]
		return e, nil
	}
	if nbytes > *budget {
		return e, fmt.Errorf("tensor %q: copying this non-contiguous view (size %v, stride %v) takes %d bytes, more than the file's storages justify", name, t.shape, t.stride, nbytes)
	}
	*budget -= nbytes
	e.Data = make([]byte, nbytes)
	stridedCopy(e.Data, base, es, t.offset, t.shape, t.stride)
	return e, nil
}

// stridedCopy gathers a strided view of src (elements of es bytes) into
// dst in row-major order, copying the innermost contiguous runs whole.
func stridedCopy(dst, src []byte, es, offset int64, shape, stride []int64) {
	k := len(shape)
	run := int64(1)
	for k > 0 && (shape[k-1] == 1 || stride[k-1] == run) {
		run *= shape[k-1]
		k--
	}
	runBytes := run * es
	idx := make([]int64, k)
	pos := offset
	for d := int64(0); d < int64(len(dst)); d += runBytes {
		copy(dst[d:d+runBytes], src[pos*es:pos*es+runBytes])
		for j := k - 1; j >= 0; j-- {
			idx[j]++
			pos += stride[j]
			if idx[j] < shape[j] {
				break
			}
			pos -= stride[j] * shape[j]
			idx[j] = 0
		}
	}
}
