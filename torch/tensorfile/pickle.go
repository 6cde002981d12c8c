package tensorfile

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/nlpodyssey/gopickle/pickle"
)

// Limits that keep a hostile pickle from costing more than a bounded amount
// of memory. A torchvision VGG16 state dict pickle is about 3 KB and costs
// about 40 KB by the estimate below; a model with 100,000 tensors stays
// well inside both limits.
const (
	// maxPickleBytes bounds the size of one pickle stream.
	maxPickleBytes = 64 << 20
	// maxPickleCost bounds the memory the unpickler may allocate, as
	// estimated per opcode by scanPickle.
	maxPickleCost = 256 << 20
	// maxNumberBytes bounds the text or binary form of one number: the
	// unpickler decodes long integers in quadratic time, and a state dict's
	// largest number (the legacy format's magic number) takes 10 bytes.
	maxNumberBytes = 256
)

// ForbiddenGlobalError reports a pickle that refers to a Python global
// outside the allow-list of a tensor state dict. Loading such a file with
// torch.load (without weights_only=True) could run arbitrary code.
type ForbiddenGlobalError struct {
	Module, Name string
}

// Error names the global and what is allowed.
func (e *ForbiddenGlobalError) Error() string {
	return fmt.Sprintf("forbidden global %s.%s: a weights file may only refer to collections.OrderedDict, "+
		"torch._utils._rebuild_tensor, _rebuild_tensor_v2, _rebuild_parameter, _rebuild_parameter_with_state "+
		"and torch.*Storage types; refusing to load it", e.Module, e.Name)
}

// Names of the allowed rebuild functions in torch._utils.
const (
	rebuildTensor             = "_rebuild_tensor"
	rebuildTensorV2           = "_rebuild_tensor_v2"
	rebuildParameter          = "_rebuild_parameter"
	rebuildParameterWithState = "_rebuild_parameter_with_state"
)

// checkGlobal applies the allow-list to a global reference.
func checkGlobal(module, name string) error {
	switch module {
	case "collections":
		if name == "OrderedDict" {
			return nil
		}
	case "torch._utils":
		switch name {
		case rebuildTensor, rebuildTensorV2, rebuildParameter, rebuildParameterWithState:
			return nil
		}
	case "torch":
		if strings.HasSuffix(name, "Storage") {
			if _, ok := dtypeFromStorage(name); ok {
				return nil
			}
			return fmt.Errorf("unsupported tensor type torch.%s: only %s tensors are supported", name, dtypeList())
		}
	}
	return &ForbiddenGlobalError{Module: module, Name: name}
}

func dtypeList() string {
	names := make([]string, 0, len(DTypes()))
	for _, d := range DTypes() {
		names = append(names, d.String())
	}
	return strings.Join(names, ", ")
}

// pickleSource is what scanPickle reads from.
type pickleSource interface {
	io.Reader
	io.ByteReader
}

// argKind is the form of an opcode's inline argument.
type argKind uint8

const (
	argNone argKind = iota
	argU1
	argU2
	argU4
	argU8
	argLine   // newline-terminated text
	argLines2 // two newline-terminated lines
	argLen1   // 1-byte length, then bytes
	argLen4   // 4-byte unsigned length, then bytes
	argLen4S  // 4-byte signed length, then bytes
	argLen8   // 8-byte length, then bytes
)

// width is the size in bytes of a fixed-size argument or of a length
// prefix.
func (k argKind) width() int64 {
	switch k {
	case argU1, argLen1:
		return 1
	case argU2:
		return 2
	case argU4, argLen4, argLen4S:
		return 4
	case argU8, argLen8:
		return 8
	}
	return 0
}

// opInfo describes one pickle opcode.
type opInfo struct {
	name    string
	arg     argKind
	allowed bool
	cost    int64 // estimated allocation beyond the stack slot
}

// Opcodes, named as in Python's pickletools.
const (
	opMark           = '('
	opStop           = '.'
	opPop            = '0'
	opPopMark        = '1'
	opDup            = '2'
	opFloat          = 'F'
	opInt            = 'I'
	opBinInt         = 'J'
	opBinInt1        = 'K'
	opLong           = 'L'
	opBinInt2        = 'M'
	opNone           = 'N'
	opPersID         = 'P'
	opBinPersID      = 'Q'
	opReduce         = 'R'
	opString         = 'S'
	opBinString      = 'T'
	opShortBinString = 'U'
	opUnicode        = 'V'
	opBinUnicode     = 'X'
	opAppend         = 'a'
	opBuild          = 'b'
	opGlobal         = 'c'
	opDict           = 'd'
	opEmptyDict      = '}'
	opAppends        = 'e'
	opGet            = 'g'
	opBinGet         = 'h'
	opInst           = 'i'
	opLongBinGet     = 'j'
	opList           = 'l'
	opEmptyList      = ']'
	opObj            = 'o'
	opPut            = 'p'
	opBinPut         = 'q'
	opLongBinPut     = 'r'
	opSetItem        = 's'
	opTuple          = 't'
	opEmptyTuple     = ')'
	opSetItems       = 'u'
	opBinFloat       = 'G'
	opProto          = 0x80
	opNewObj         = 0x81
	opExt1           = 0x82
	opExt2           = 0x83
	opExt4           = 0x84
	opTuple1         = 0x85
	opTuple2         = 0x86
	opTuple3         = 0x87
	opNewTrue        = 0x88
	opNewFalse       = 0x89
	opLong1          = 0x8a
	opLong4          = 0x8b
	opBinBytes       = 'B'
	opShortBinBytes  = 'C'
	opShortBinUni    = 0x8c
	opBinUnicode8    = 0x8d
	opBinBytes8      = 0x8e
	opEmptySet       = 0x8f
	opAddItems       = 0x90
	opFrozenSet      = 0x91
	opNewObjEx       = 0x92
	opStackGlobal    = 0x93
	opMemoize        = 0x94
	opFrame          = 0x95
	opByteArray8     = 0x96
	opNextBuffer     = 0x97
	opReadOnlyBuffer = 0x98
)

// lookupOp returns the description of an opcode. Opcodes that build
// arbitrary objects (INST, OBJ, NEWOBJ, NEWOBJ_EX), use the extension
// registry, text persistent IDs or out-of-band buffers are known but not
// allowed: a tensor state dict never needs them.
func lookupOp(op byte) (opInfo, bool) {
	switch op {
	case opMark:
		return opInfo{"MARK", argNone, true, 256}, true
	case opStop:
		return opInfo{"STOP", argNone, true, 0}, true
	case opPop:
		return opInfo{"POP", argNone, true, 0}, true
	case opPopMark:
		return opInfo{"POP_MARK", argNone, true, 0}, true
	case opDup:
		return opInfo{"DUP", argNone, true, 0}, true
	case opFloat:
		return opInfo{"FLOAT", argLine, true, 16}, true
	case opInt:
		return opInfo{"INT", argLine, true, 16}, true
	case opBinInt:
		return opInfo{"BININT", argU4, true, 16}, true
	case opBinInt1:
		return opInfo{"BININT1", argU1, true, 16}, true
	case opLong:
		return opInfo{"LONG", argLine, true, 64}, true
	case opBinInt2:
		return opInfo{"BININT2", argU2, true, 16}, true
	case opNone:
		return opInfo{"NONE", argNone, true, 0}, true
	case opPersID:
		return opInfo{"PERSID", argLine, false, 0}, true
	case opBinPersID:
		return opInfo{"BINPERSID", argNone, true, 256}, true
	case opReduce:
		return opInfo{"REDUCE", argNone, true, 512}, true
	case opString:
		return opInfo{"STRING", argLine, true, 32}, true
	case opBinString:
		return opInfo{"BINSTRING", argLen4S, true, 32}, true
	case opShortBinString:
		return opInfo{"SHORT_BINSTRING", argLen1, true, 32}, true
	case opUnicode:
		return opInfo{"UNICODE", argLine, true, 32}, true
	case opBinUnicode:
		return opInfo{"BINUNICODE", argLen4, true, 32}, true
	case opAppend:
		return opInfo{"APPEND", argNone, true, 16}, true
	case opBuild:
		return opInfo{"BUILD", argNone, true, 128}, true
	case opGlobal:
		return opInfo{"GLOBAL", argLines2, true, 64}, true
	case opDict:
		return opInfo{"DICT", argNone, true, 160}, true
	case opEmptyDict:
		return opInfo{"EMPTY_DICT", argNone, true, 160}, true
	case opAppends:
		return opInfo{"APPENDS", argNone, true, 64}, true
	case opGet:
		return opInfo{"GET", argLine, true, 0}, true
	case opBinGet:
		return opInfo{"BINGET", argU1, true, 0}, true
	case opInst:
		return opInfo{"INST", argLines2, false, 0}, true
	case opLongBinGet:
		return opInfo{"LONG_BINGET", argU4, true, 0}, true
	case opList:
		return opInfo{"LIST", argNone, true, 64}, true
	case opEmptyList:
		return opInfo{"EMPTY_LIST", argNone, true, 96}, true
	case opObj:
		return opInfo{"OBJ", argNone, false, 0}, true
	case opPut:
		return opInfo{"PUT", argLine, true, 64}, true
	case opBinPut:
		return opInfo{"BINPUT", argU1, true, 64}, true
	case opLongBinPut:
		return opInfo{"LONG_BINPUT", argU4, true, 64}, true
	case opSetItem:
		return opInfo{"SETITEM", argNone, true, 64}, true
	case opTuple:
		return opInfo{"TUPLE", argNone, true, 64}, true
	case opEmptyTuple:
		return opInfo{"EMPTY_TUPLE", argNone, true, 64}, true
	case opSetItems:
		return opInfo{"SETITEMS", argNone, true, 64}, true
	case opBinFloat:
		return opInfo{"BINFLOAT", argU8, true, 16}, true
	case opProto:
		return opInfo{"PROTO", argU1, true, 0}, true
	case opNewObj:
		return opInfo{"NEWOBJ", argNone, false, 0}, true
	case opExt1:
		return opInfo{"EXT1", argU1, false, 0}, true
	case opExt2:
		return opInfo{"EXT2", argU2, false, 0}, true
	case opExt4:
		return opInfo{"EXT4", argU4, false, 0}, true
	case opTuple1:
		return opInfo{"TUPLE1", argNone, true, 64}, true
	case opTuple2:
		return opInfo{"TUPLE2", argNone, true, 64}, true
	case opTuple3:
		return opInfo{"TUPLE3", argNone, true, 80}, true
	case opNewTrue:
		return opInfo{"NEWTRUE", argNone, true, 0}, true
	case opNewFalse:
		return opInfo{"NEWFALSE", argNone, true, 0}, true
	case opLong1:
		return opInfo{"LONG1", argLen1, true, 64}, true
	case opLong4:
		return opInfo{"LONG4", argLen4S, true, 64}, true
	case opBinBytes:
		return opInfo{"BINBYTES", argLen4, true, 32}, true
	case opShortBinBytes:
		return opInfo{"SHORT_BINBYTES", argLen1, true, 32}, true
	case opShortBinUni:
		return opInfo{"SHORT_BINUNICODE", argLen1, true, 32}, true
	case opBinUnicode8:
		return opInfo{"BINUNICODE8", argLen8, true, 32}, true
	case opBinBytes8:
		return opInfo{"BINBYTES8", argLen8, true, 32}, true
	case opEmptySet:
		return opInfo{"EMPTY_SET", argNone, true, 256}, true
	case opAddItems:
		return opInfo{"ADDITEMS", argNone, true, 64}, true
	case opFrozenSet:
		return opInfo{"FROZENSET", argNone, true, 256}, true
	case opNewObjEx:
		return opInfo{"NEWOBJ_EX", argNone, false, 0}, true
	case opStackGlobal:
		return opInfo{"STACK_GLOBAL", argNone, true, 64}, true
	case opMemoize:
		return opInfo{"MEMOIZE", argNone, true, 64}, true
	case opFrame:
		return opInfo{"FRAME", argU8, true, 0}, true
	case opByteArray8:
		return opInfo{"BYTEARRAY8", argLen8, true, 64}, true
	case opNextBuffer:
		return opInfo{"NEXT_BUFFER", argNone, false, 0}, true
	case opReadOnlyBuffer:
		return opInfo{"READONLY_BUFFER", argNone, false, 0}, true
	}
	return opInfo{}, false
}

// scanVal is what the scanner knows about a value on the pickle stack: a
// string literal, or something else.
type scanVal struct {
	s     string
	isStr bool
}

// pickleScanner reads one pickle stream opcode by opcode, before anything is
// unpickled. It checks that every opcode is known and allowed, that every
// length fits in the bytes that remain, that every global is on the
// allow-list, and estimates the memory unpickling will take. It returns the
// raw bytes of the stream, which are then handed to the unpickler.
type pickleScanner struct {
	src    pickleSource
	avail  int64 // bytes the source still has
	out    []byte
	memo   map[int]scanVal
	recent [2]scanVal // the two most recent stack pushes, newest last
	cost   int64
}

// scanPickle reads one pickle (up to and including its STOP opcode) from
// src, which holds at most avail more bytes, and returns its bytes.
func scanPickle(src pickleSource, avail int64) ([]byte, error) {
	s := &pickleScanner{src: src, avail: avail, memo: map[int]scanVal{}}
	if err := s.run(); err != nil {
		return nil, fmt.Errorf("pickle: %w", err)
	}
	return s.out, nil
}

var errTruncated = errors.New("truncated: the stream ends before the pickle's STOP opcode")

func (s *pickleScanner) room(n int64) error {
	if n < 0 || n > s.avail-int64(len(s.out)) {
		return fmt.Errorf("at byte %d: %w", len(s.out), errTruncated)
	}
	if int64(len(s.out))+n > maxPickleBytes {
		return fmt.Errorf("at byte %d: larger than the limit of %d bytes", len(s.out), maxPickleBytes)
	}
	return nil
}

func (s *pickleScanner) byte() (byte, error) {
	if err := s.room(1); err != nil {
		return 0, err
	}
	b, err := s.src.ReadByte()
	if err != nil {
		if err == io.EOF {
			return 0, fmt.Errorf("at byte %d: %w", len(s.out), errTruncated)
		}
		return 0, err
	}
	s.out = append(s.out, b)
	return b, nil
}

// read consumes n bytes and returns them (aliasing s.out).
func (s *pickleScanner) read(n int64) ([]byte, error) {
	if err := s.room(n); err != nil {
		return nil, err
	}
	start := len(s.out)
	s.out = append(s.out, make([]byte, n)...)
	if _, err := io.ReadFull(s.src, s.out[start:]); err != nil {
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return nil, fmt.Errorf("at byte %d: %w", start, errTruncated)
		}
		return nil, err
	}
	return s.out[start:], nil
}

// line consumes a newline-terminated line and returns it without the
// newline.
func (s *pickleScanner) line() (string, error) {
	start := len(s.out)
	for {
		b, err := s.byte()
		if err != nil {
			return "", err
		}
		if b == '\n' {
			return string(s.out[start : len(s.out)-1]), nil
		}
	}
}

func (s *pickleScanner) push(v scanVal) {
	s.recent[0], s.recent[1] = s.recent[1], v
}

func (s *pickleScanner) run() error {
	for {
		pos := len(s.out)
		op, err := s.byte()
		if err != nil {
			return err
		}
		info, ok := lookupOp(op)
		if !ok {
			return fmt.Errorf("unknown opcode 0x%02x at byte %d", op, pos)
		}
		if !info.allowed {
			return fmt.Errorf("opcode %s at byte %d is not allowed in a weights file", info.name, pos)
		}
		s.cost += 32 + info.cost
		var (
			arg    []byte
			n      uint64
			text   string
			second string
		)
		switch info.arg {
		case argU1, argU2, argU4, argU8:
			size := info.arg.width()
			if arg, err = s.read(size); err != nil {
				return err
			}
			var b8 [8]byte
			copy(b8[:], arg)
			n = binary.LittleEndian.Uint64(b8[:])
		case argLine:
			if text, err = s.line(); err != nil {
				return err
			}
			if op != opString && op != opUnicode && len(text) > maxNumberBytes {
				return fmt.Errorf("%s at byte %d has a %d-byte argument, more than %d", info.name, pos, len(text), maxNumberBytes)
			}
			s.cost += 2 * int64(len(text))
		case argLines2:
			if text, err = s.line(); err != nil {
				return err
			}
			if second, err = s.line(); err != nil {
				return err
			}
		case argLen1, argLen4, argLen4S, argLen8:
			var lenBytes []byte
			size := info.arg.width()
			if lenBytes, err = s.read(size); err != nil {
				return err
			}
			var b8 [8]byte
			copy(b8[:], lenBytes)
			length := binary.LittleEndian.Uint64(b8[:])
			if info.arg == argLen4S && length >= 1<<31 {
				return fmt.Errorf("%s at byte %d has a negative length", info.name, pos)
			}
			if (op == opLong1 || op == opLong4) && length > maxNumberBytes {
				return fmt.Errorf("%s at byte %d has a %d-byte number, more than %d", info.name, pos, length, maxNumberBytes)
			}
			if length > uint64(maxPickleBytes) {
				return fmt.Errorf("%s at byte %d declares %d bytes, more than the pickle limit of %d", info.name, pos, length, maxPickleBytes)
			}
			if arg, err = s.read(int64(length)); err != nil {
				return err
			}
			s.cost += 2 * int64(length)
		}
		if s.cost > maxPickleCost {
			return fmt.Errorf("too complex: unpickling it would take more than %d bytes of memory", maxPickleCost)
		}

		switch op {
		case opStop:
			return nil
		case opProto:
			if n > uint64(pickle.HighestProtocol) {
				return fmt.Errorf("unsupported pickle protocol %d", n)
			}
		case opFrame:
			if n > uint64(s.avail-int64(len(s.out))) {
				return fmt.Errorf("FRAME at byte %d declares %d bytes, more than remain", pos, n)
			}
			s.cost += int64(n)
		case opLong1, opLong4:
			if len(arg) == 0 {
				return fmt.Errorf("%s at byte %d has an empty payload", info.name, pos)
			}
			s.push(scanVal{})
		case opString:
			// Unpickled as the text between the quotes.
			if len(text) >= 2 && (text[0] == '\'' || text[0] == '"') && text[len(text)-1] == text[0] {
				s.push(scanVal{s: text[1 : len(text)-1], isStr: true})
			} else {
				s.push(scanVal{})
			}
		case opUnicode:
			s.push(scanVal{s: text, isStr: true})
		case opBinString, opShortBinString, opBinUnicode, opShortBinUni, opBinUnicode8:
			s.push(scanVal{s: string(arg), isStr: true})
		case opGlobal:
			if err := checkGlobal(text, second); err != nil {
				return err
			}
			s.push(scanVal{})
		case opStackGlobal:
			module, name := s.recent[0], s.recent[1]
			if !module.isStr || !name.isStr {
				return fmt.Errorf("STACK_GLOBAL at byte %d does not take its module and name from string literals", pos)
			}
			if err := checkGlobal(module.s, name.s); err != nil {
				return err
			}
			s.recent = [2]scanVal{}
		case opPut, opBinPut, opLongBinPut, opMemoize:
			idx := int(n)
			switch op {
			case opPut:
				if idx, err = strconv.Atoi(text); err != nil || idx < 0 {
					return fmt.Errorf("PUT at byte %d has an invalid index %q", pos, text)
				}
			case opMemoize:
				idx = len(s.memo)
			}
			s.memo[idx] = s.recent[1]
		case opGet, opBinGet, opLongBinGet:
			idx := int(n)
			if op == opGet {
				if idx, err = strconv.Atoi(text); err != nil {
					return fmt.Errorf("GET at byte %d has an invalid index %q", pos, text)
				}
			}
			v, ok := s.memo[idx]
			if !ok {
				return fmt.Errorf("%s at byte %d reads memo slot %d before it is set", info.name, pos, idx)
			}
			s.push(v)
		default:
			s.push(scanVal{})
		}
	}
}

// unpickle runs the unpickler over a stream that scanPickle has accepted.
// findClass and persistentLoad resolve globals and storages; a panic in the
// unpickler (on a malformed stream) becomes an error.
func unpickle(data []byte, findClass func(module, name string) (any, error), persistentLoad func(any) (any, error)) (result any, err error) {
	defer func() {
		if r := recover(); r != nil {
			result, err = nil, fmt.Errorf("malformed pickle: %v", r)
		}
	}()
	u := pickle.NewUnpickler(bytes.NewReader(data))
	u.FindClass = findClass
	u.PersistentLoad = persistentLoad
	result, err = u.Load()
	if err != nil {
		return nil, fmt.Errorf("unpickling: %w", err)
	}
	return result, nil
}
