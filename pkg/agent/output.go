package agent

import (
	"bytes"
	"io"
	"strconv"
	"sync"
)

// lineMux writes the children's output to one writer, a whole line at a
// time, each line marked with its child's id: `child=ID ` before a text
// (logfmt) line, a "child" field first in a JSON one.
type lineMux struct {
	mu   sync.Mutex
	w    io.Writer
	json bool
}

// child returns the writer of child id's stdout and stderr.
func (m *lineMux) child(id string) *lineWriter { return &lineWriter{m: m, id: id} }

func (m *lineMux) line(id string, b []byte) {
	var out []byte
	switch {
	case m.json && len(b) > 1 && b[0] == '{':
		out = append(out, `{"child":`...)
		out = strconv.AppendQuote(out, id)
		if b[1] != '}' {
			out = append(out, ',')
		}
		out = append(out, b[1:]...)
	default:
		out = append(out, "child="...)
		out = append(out, id...)
		out = append(out, ' ')
		out = append(out, b...)
	}
	out = append(out, '\n')
	m.mu.Lock()
	defer m.mu.Unlock()
	_, _ = m.w.Write(out)
}

// lineWriter buffers one child's partial line; exec.Cmd writes to it from
// one goroutine (stdout and stderr share it).
type lineWriter struct {
	m   *lineMux
	id  string
	mu  sync.Mutex
	buf []byte
}

// maxLine bounds a line kept in memory; a longer one is cut.
const maxLine = 64 << 10

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			w.buf = append(w.buf, p...)
			if len(w.buf) > maxLine {
				w.m.line(w.id, w.buf[:maxLine])
				w.buf = w.buf[:0]
			}
			break
		}
		w.buf = append(w.buf, p[:i]...)
		w.m.line(w.id, bytes.TrimRight(w.buf, "\r"))
		w.buf = w.buf[:0]
		p = p[i+1:]
	}
	return n, nil
}

// flush writes a last line that had no newline.
func (w *lineWriter) flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.buf) > 0 {
		w.m.line(w.id, w.buf)
		w.buf = w.buf[:0]
	}
}
