package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/crawlmesh/crawlmesh/pkg/files"
	"github.com/crawlmesh/crawlmesh/pkg/mesh"
)

// TestFilesCLI: files put|get|ls|rm through the binary, the name and
// size errors, a 10,000-line seeds file with bad lines and duplicates
// crawled as exactly its unique valid URLs, and results export
// --to-files reading back as the plain export.
func TestFilesCLI(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	site := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, `<html><body><div class="item"><span class="name">%s</span></div></body></html>`, r.URL.Path)
	}))
	t.Cleanup(site.Close)
	m := startMesh(t, 2)
	dir := t.TempDir()

	// Round trip, under the base name and under a NAME.
	body := bytes.Repeat([]byte("crawlmesh shared file\n"), 50_000) // ~1 MiB
	local := filepath.Join(dir, "shop.js")
	if err := os.WriteFile(local, body, 0o644); err != nil {
		t.Fatal(err)
	}
	var out string
	harnessRetry(t, func() bool {
		_, _, code := m.cli("files", "put", local)
		return code == 0
	})
	m.mustCLI("files", "put", local, "other.js")
	out = m.mustCLI("files", "ls")
	if !strings.Contains(out, "shop.js") || !strings.Contains(out, "other.js") || !strings.Contains(out, "SHA-256=") {
		t.Errorf("files ls:\n%s", out)
	}
	var ls []files.Info
	if err := json.Unmarshal([]byte(m.mustCLI("files", "ls", "-o", "json")), &ls); err != nil || len(ls) != 2 ||
		ls[1].Name != "shop.js" || ls[1].Size != int64(len(body)) || ls[1].Modified.IsZero() {
		t.Errorf("files ls -o json = %+v, %v", ls, err)
	}
	got := filepath.Join(dir, "got.js")
	m.mustCLI("files", "get", "shop.js", "--out", got)
	if b, _ := os.ReadFile(got); !bytes.Equal(b, body) {
		t.Errorf("files get --out: %d bytes differ from the %d put", len(b), len(body))
	}
	if stdout := m.mustCLI("files", "get", "other.js"); stdout != string(body) {
		t.Errorf("files get to stdout: %d bytes", len(stdout))
	}
	m.mustCLI("files", "rm", "other.js")
	if _, errOut, code := m.cli("files", "get", "other.js"); code == 0 || !strings.Contains(errOut, "no such file: other.js") {
		t.Errorf("get after rm: exit %d, %s", code, errOut)
	}
	if _, errOut, code := m.cli("files", "rm", "other.js"); code == 0 || !strings.Contains(errOut, "other.js") {
		t.Errorf("rm of a missing file: exit %d, %s", code, errOut)
	}

	// Names and sizes.
	for name, want := range map[string]string{
		".hidden":                "must not start with a dot",
		"a b":                    "not allowed",
		"a/b":                    "must not contain '/'",
		strings.Repeat("n", 129): "at most 128",
	} {
		_, errOut, code := m.cli("files", "put", local, name)
		if code != 2 || !strings.Contains(errOut, want) || !strings.Contains(errOut, "file name") {
			t.Errorf("put as %q: exit %d, %q; want 2 and %q", name, code, errOut, want)
		}
	}
	if _, errOut, code := m.cli("files", "put", local, "--max-size", "100KiB"); code != 1 ||
		!strings.Contains(errOut, "over the limit of 100 KiB") || !strings.Contains(errOut, "1 MiB") {
		t.Errorf("put over --max-size: exit %d, %q", code, errOut)
	}
	big := filepath.Join(dir, "big.bin")
	if err := os.WriteFile(big, make([]byte, 64<<20+1), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, errOut, code := m.cli("files", "put", big); code != 1 || !strings.Contains(errOut, "over the limit of 64 MiB") {
		t.Errorf("put of 64 MiB + 1: exit %d, %q", code, errOut)
	}

	// A seeds file of 10,000 lines: 1,000 unique valid URLs, each repeated
	// (also spelled differently), comments, blanks and bad lines.
	var seeds strings.Builder
	want := map[string]bool{}
	bad := 0
	for line := 1; line <= 10_000; line++ {
		switch {
		case line%500 == 0:
			seeds.WriteString("mailto:someone@example.com\n")
			bad++
		case line%333 == 0:
			seeds.WriteString("# comment\n\n")
			line++
		default:
			p := fmt.Sprintf("/p/%d", line%1000)
			want[p] = true
			if line%2 == 0 {
				seeds.WriteString(strings.Replace(site.URL, "http://", "HTTP://", 1) + p + "\n")
			} else {
				seeds.WriteString(site.URL + p + "\n")
			}
		}
	}
	seedsPath := filepath.Join(dir, "seeds.txt")
	if err := os.WriteFile(seedsPath, []byte(seeds.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	m.mustCLI("files", "put", seedsPath)
	host := strings.TrimPrefix(site.URL, "http://")
	m.apply(fmt.Sprintf(`name: seeded
start_urls: ["%s/start"]
allowed_domains: ["%s"]
max_depth: 1
items:
  - selector: "div.item"
    fields:
      name: { css: ".name" }
politeness:
  delay: 0s
  parallelism: 16
  robots_txt: false
`, site.URL, host))
	id := strings.TrimSpace(m.mustCLI("crawl", "start", "seeded", "--seeds-file", "seeds.txt"))
	if _, errOut, code := m.cli("crawl", "wait", id, "--timeout", "10s"); code != 0 {
		t.Fatalf("crawl wait: exit %d\n%s", code, errOut)
	}
	st := m.status(id)
	if st.PagesOK != int64(len(want)) || st.Items != int64(len(want)) {
		t.Errorf("seeded crawl: %d pages, %d items; want %d each (the unique valid URLs)", st.PagesOK, st.Items, len(want))
	}
	items := m.export(id)
	for k, n := range items {
		p := strings.TrimPrefix(strings.SplitN(k, "|", 2)[0], "")
		if !want[p] || n != 1 {
			t.Errorf("item %q x%d not one of the seeds", k, n)
		}
	}
	logs := m.mustCLI("crawl", "logs", id)
	if n := strings.Count(logs, "bad-seed"); n != bad || !strings.Contains(logs, "seeds.txt line 500:") {
		t.Errorf("crawl logs: %d bad-seed lines, want %d with line numbers:\n%s", n, bad, firstLines(logs, 5))
	}

	// export --to-files, then files get: the plain export, byte for byte.
	for _, format := range []string{"jsonl", "csv"} {
		plain := m.mustCLI("results", "export", id, "--format", format)
		name := "export." + format
		m.mustCLI("results", "export", id, "--format", format, "--to-files", name)
		if stored := m.mustCLI("files", "get", name); stored != plain {
			t.Errorf("%s: files get of --to-files differs from the plain export (%d vs %d bytes)", format, len(stored), len(plain))
		}
	}
	if _, errOut, code := m.cli("results", "export", id, "--to-files", "x", "--max-size", "1KiB"); code != 1 || !strings.Contains(errOut, "over the limit of 1 KiB") {
		t.Errorf("export over --max-size: exit %d, %q", code, errOut)
	}
	if out := m.mustCLI("files", "ls"); strings.Contains(out, " x ") {
		t.Errorf("a refused export left a file:\n%s", out)
	}
	_ = mesh.CrawlCompleted
}

// harnessRetry retries op while the master creates the assets.
func harnessRetry(t *testing.T, op func() bool) {
	t.Helper()
	waitFor(t, 20*time.Second, "the Object Store files", op)
}
