package main

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/crawlmesh/crawlmesh/pkg/crawlctl"
	"github.com/crawlmesh/crawlmesh/pkg/mesh"
)

// mesh is a running set of processes for crawl tests.
type testMesh struct {
	t       *testing.T
	url     string
	store   string
	port    int
	ns      *proc
	master  *proc
	workers []*proc
}

func startMesh(t *testing.T, workers int, extra ...string) *testMesh {
	m := &testMesh{t: t, store: t.TempDir(), port: freePort(t)}
	m.ns, m.url = natsServer(t, true, m.store, m.port)
	m.master = start(t, "master", append([]string{"--nats", m.url, "--id", "m1", "--http", "", "--task-ack-wait", "5s"}, extra...)...)
	for i := range workers {
		m.workers = append(m.workers, m.startWorker("w"+strconv.Itoa(i+1)))
	}
	nc := connect(t, m.url)
	waitFor(t, 15*time.Second, "master and workers online", func() bool {
		v := view(t, nc)
		for i := range workers {
			if !v["w"+strconv.Itoa(i+1)] {
				return false
			}
		}
		return v["m1"]
	})
	return m
}

func (m *testMesh) startWorker(id string) *proc {
	return start(m.t, "worker", "--nats", m.url, "--id", id, "--http", "", "--concurrency", "4", "--request-timeout", "5s")
}

func (m *testMesh) cli(args ...string) (string, string, int) {
	m.t.Helper()
	return runBin(m.t, "crawlmesh", append(args, "--nats", m.url)...)
}

func (m *testMesh) mustCLI(args ...string) string {
	m.t.Helper()
	out, errOut, code := m.cli(args...)
	if code != 0 {
		m.t.Fatalf("crawlmesh %s: exit %d\n%s%s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}

func (m *testMesh) apply(spec string) {
	m.t.Helper()
	f := filepath.Join(m.t.TempDir(), "spec.yaml")
	if err := os.WriteFile(f, []byte(spec), 0o644); err != nil {
		m.t.Fatal(err)
	}
	// The master creates the buckets; retry until it has.
	waitFor(m.t, 15*time.Second, "spider apply", func() bool {
		_, _, code := m.cli("spider", "apply", "-f", f)
		return code == 0
	})
}

func (m *testMesh) status(id string) crawlctl.Status {
	m.t.Helper()
	var st crawlctl.Status
	out := m.mustCLI("crawl", "status", id, "-o", "json")
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		m.t.Fatalf("crawl status -o json: %v\n%s", err, out)
	}
	return st
}

// export returns the exported items as "name|price|path" with counts.
func (m *testMesh) export(id string) map[string]int {
	m.t.Helper()
	f := filepath.Join(m.t.TempDir(), "items.jsonl")
	m.mustCLI("results", "export", id, "--format", "jsonl", "--out", f)
	fh, err := os.Open(f)
	if err != nil {
		m.t.Fatal(err)
	}
	defer fh.Close()
	got := map[string]int{}
	sc := bufio.NewScanner(fh)
	for sc.Scan() {
		var it mesh.Item
		if err := json.Unmarshal(sc.Bytes(), &it); err != nil {
			m.t.Fatalf("export line %q: %v", sc.Text(), err)
		}
		if it.Crawl != id || it.FetchedAt.IsZero() || it.Spider == "" {
			m.t.Errorf("item lacks crawl, spider or fetched_at: %s", sc.Text())
		}
		path := it.URL
		if i := strings.Index(path, "://"); i >= 0 {
			path = path[i+3:]
			path = path[strings.IndexByte(path, '/'):]
		}
		got[it.Data["name"]+"|"+it.Data["price"]+"|"+path]++
	}
	return got
}

// checkItems fails with the exact lost, unexpected and doubled items.
func checkItems(t *testing.T, got map[string]int, want map[string]bool) {
	t.Helper()
	var lost, extra, doubled []string
	for k := range want {
		if got[k] == 0 {
			lost = append(lost, k)
		}
	}
	for k, n := range got {
		if !want[k] {
			extra = append(extra, k)
		}
		if n > 1 {
			doubled = append(doubled, k+" x"+strconv.Itoa(n))
		}
	}
	sort.Strings(lost)
	sort.Strings(extra)
	sort.Strings(doubled)
	if len(lost)+len(extra)+len(doubled) > 0 {
		t.Fatalf("item set differs: lost %v, unexpected %v, doubled %v", lost, extra, doubled)
	}
}

// TestCrawlTrapSite: three workers crawl a site full of traps; the export
// is exactly the expected items, each once, and robots.txt was obeyed.
func TestCrawlTrapSite(t *testing.T) {
	site := newTrapSite(t, 5, 0)
	m := startMesh(t, 3)
	m.apply(site.spec("traps"))
	id := strings.TrimSpace(m.mustCLI("crawl", "start", "traps"))
	if !strings.HasPrefix(id, "traps-") {
		t.Fatalf("crawl start printed %q, want the crawl id alone", id)
	}
	_, errOut, code := m.cli("crawl", "wait", id, "--timeout", "5s")
	if code != 0 {
		t.Fatalf("crawl wait: exit %d\n%s", code, errOut)
	}
	checkItems(t, m.export(id), site.expected())
	if n := site.hitCount("/private/secret"); n != 0 {
		t.Errorf("robots-disallowed /private/secret fetched %d times", n)
	}
	if site.hitCount("/robots.txt") == 0 {
		t.Errorf("robots.txt never fetched")
	}
	if n := site.hitCount("/calendar/4"); n != 0 {
		t.Errorf("/calendar/4 (depth 5 > max_depth 4) fetched %d times", n)
	}
	if n := site.hitCount("/flaky"); n != 2 {
		t.Errorf("/flaky fetched %d times, want 2 (503, then a retry)", n)
	}
	if n := site.hitCount("/missing"); n != 1 {
		t.Errorf("/missing (404) fetched %d times, want 1: permanent errors are not retried", n)
	}
	if n := site.hitCount("/cat/1"); n != 1 {
		t.Errorf("/cat/1 linked in 6 forms fetched %d times, want 1", n)
	}
	st := m.status(id)
	if st.State != mesh.CrawlCompleted || st.Queued != 0 || st.Items != int64(len(site.expected())) {
		t.Errorf("status after completion: %+v", st)
	}
	// 404, loop, huge, binary, robots-blocked (the redirect that landed on
	// a known page is dropped, not failed).
	if st.PagesFailed != 5 || st.Dropped != 1 {
		t.Errorf("pages failed = %d, dropped %d; want 5 (404, redirect loop, 30 MB page, binary, robots) and 1 (redirect to a known page)", st.PagesFailed, st.Dropped)
	}
	logs := m.mustCLI("crawl", "logs", id)
	for _, want := range []string{"retry", "status 503", "/missing", "failed", "robots", "too-large", "not-html", "redirect loop"} {
		if !strings.Contains(logs, want) {
			t.Errorf("crawl logs lack %q:\n%s", want, logs)
		}
	}
	csvOut := m.mustCLI("results", "export", id, "--format", "csv")
	if lines := strings.Count(csvOut, "\n"); lines != len(site.expected())+1 {
		t.Errorf("csv export has %d lines, want header + %d", lines, len(site.expected()))
	}
	if !strings.HasPrefix(csvOut, "url,spider,crawl,depth,fetched_at,name,price\n") {
		t.Errorf("csv header: %q", firstLines(csvOut, 1))
	}
	ls := m.mustCLI("crawl", "ls")
	if !strings.Contains(ls, id) || !strings.Contains(ls, "completed") {
		t.Errorf("crawl ls:\n%s", ls)
	}
}
