package launch

import (
	"bytes"
	"io"
	"strings"
	"sync"
)

// maxLine is the longest partial line a copier holds back waiting for its
// end; a longer one is written in pieces.
const maxLine = 64 << 10

// maxTail is how much of a line is kept as a worker's last error line.
const maxTail = 4 << 10

// syncWriters are the launcher's two outputs behind one lock, so that the
// workers' lines never interleave within a line (the two may be the same
// writer).
type syncWriters struct {
	mu             sync.Mutex
	stdout, stderr io.Writer
}

func newSyncWriters(stdout, stderr io.Writer) *syncWriters {
	if stdout == nil {
		stdout = io.Discard
	}
	if stderr == nil {
		stderr = io.Discard
	}
	return &syncWriters{stdout: stdout, stderr: stderr}
}

// lineCopier copies one stream of a worker line by line to out, with
// prefix in front of every line, and remembers its last non-empty line.
type lineCopier struct {
	out    io.Writer
	prefix string
	mu     *sync.Mutex

	pending []byte // the current line, not yet written
	started bool   // part of the current line was written already

	tailMu sync.Mutex
	tail   []byte // the current line, for lastLine
	last   string // the last complete non-empty line
}

// copyFrom copies r until it ends, then writes what is left of the last
// line (with a newline when it had none).
func (c *lineCopier) copyFrom(r io.Reader) {
	buf := make([]byte, 32<<10)
	for {
		n, err := r.Read(buf)
		if n > 0 {
			c.write(buf[:n])
		}
		if err != nil {
			break
		}
	}
	if len(c.pending) > 0 || c.started {
		c.pending = append(c.pending, '\n')
		c.flush()
	}
	c.endLine()
}

func (c *lineCopier) write(p []byte) {
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			c.pending = append(c.pending, p...)
			c.track(p)
			if len(c.pending) >= maxLine {
				c.flush()
				c.started = true
			}
			return
		}
		c.pending = append(c.pending, p[:i+1]...)
		c.track(p[:i])
		c.flush()
		c.started = false
		c.endLine()
		p = p[i+1:]
	}
}

// flush writes the pending bytes, with the prefix when they start a line
// and the line does not carry it already.
func (c *lineCopier) flush() {
	if len(c.pending) == 0 {
		return
	}
	c.mu.Lock()
	if !c.started && c.prefix != "" && !namesRank(c.pending, c.prefix) {
		io.WriteString(c.out, c.prefix)
	}
	c.out.Write(c.pending)
	c.mu.Unlock()
	c.pending = c.pending[:0]
}

// namesRank reports whether line says which rank wrote it already: it
// starts with prefix ("rank 1: "), or has it after a short lead, as fer's
// errors have ("fer train: rank 1: ...").
func namesRank(line []byte, prefix string) bool {
	i := bytes.Index(line, []byte(prefix))
	return i == 0 || (i > 0 && i <= 32 && bytes.HasSuffix(line[:i], []byte(": ")))
}

func (c *lineCopier) track(p []byte) {
	c.tailMu.Lock()
	defer c.tailMu.Unlock()
	if room := maxTail - len(c.tail); room > 0 {
		if len(p) > room {
			p = p[:room]
		}
		c.tail = append(c.tail, p...)
	}
}

// endLine makes the current line the last line when it is not empty. A
// line that a carriage return rewrote counts by its last version.
func (c *lineCopier) endLine() {
	c.tailMu.Lock()
	defer c.tailMu.Unlock()
	line := string(c.tail)
	if i := strings.LastIndexByte(strings.TrimRight(line, "\r"), '\r'); i >= 0 {
		line = line[i+1:]
	}
	if line = strings.TrimSpace(line); line != "" {
		c.last = line
	}
	c.tail = c.tail[:0]
}

// lastLine is the last non-empty line the stream carried.
func (c *lineCopier) lastLine() string {
	if c == nil {
		return ""
	}
	c.tailMu.Lock()
	defer c.tailMu.Unlock()
	return c.last
}
