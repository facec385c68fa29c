package agent

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

// Children's lines reach the agent's output whole and marked with the
// child's id, however the child's writes split them.
func TestLineMux(t *testing.T) {
	var buf bytes.Buffer
	m := &lineMux{w: &buf}
	w := m.child("a-1")
	for _, p := range []string{"time=1 level=INFO ", "msg=one\nlevel=WARN msg=t", "wo\r\n", "tail"} {
		if _, err := w.Write([]byte(p)); err != nil {
			t.Fatal(err)
		}
	}
	w.flush()
	want := "child=a-1 time=1 level=INFO msg=one\nchild=a-1 level=WARN msg=two\nchild=a-1 tail\n"
	if buf.String() != want {
		t.Errorf("text output:\n%q\nwant\n%q", buf.String(), want)
	}

	buf.Reset()
	m = &lineMux{w: &buf, json: true}
	w = m.child("a-2")
	_, _ = w.Write([]byte(`{"level":"INFO","msg":"x"}` + "\n{}\nnot json\n"))
	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	if len(lines) != 3 {
		t.Fatalf("json output: %q", buf.String())
	}
	for _, l := range lines[:2] {
		var v map[string]any
		if err := json.Unmarshal([]byte(l), &v); err != nil || v["child"] != "a-2" {
			t.Errorf("json line %q: %v, child %v", l, err, v["child"])
		}
	}
	if lines[2] != "child=a-2 not json" {
		t.Errorf("non-JSON line in JSON mode: %q", lines[2])
	}
}

// A line longer than maxLine is cut rather than held in memory.
func TestLineMuxLongLine(t *testing.T) {
	var buf bytes.Buffer
	w := (&lineMux{w: &buf}).child("a-1")
	_, _ = w.Write(bytes.Repeat([]byte("x"), maxLine+10))
	if len(w.buf) > maxLine {
		t.Errorf("%d bytes buffered", len(w.buf))
	}
	if buf.Len() < maxLine {
		t.Errorf("long line not written: %d bytes", buf.Len())
	}
}
