package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/crawlmesh/crawlmesh/pkg/clusterconfig"
	"github.com/crawlmesh/crawlmesh/pkg/crawlctl"
	"github.com/crawlmesh/crawlmesh/pkg/mesh"
	"github.com/crawlmesh/crawlmesh/pkg/synthsite"
	"github.com/crawlmesh/crawlmesh/services/internal/harness"
)

// brokenSite is a synthsite whose page broken answers 503 until fixed,
// counting the pages it served (200s) by path.
type brokenSite struct {
	*httptest.Server
	cfg    synthsite.Config
	broken string
	fixed  atomic.Bool
	mu     sync.Mutex
	served map[string]int
}

func newBrokenSite(t *testing.T, cfg synthsite.Config, broken int) *brokenSite {
	t.Helper()
	s := &brokenSite{cfg: cfg, broken: "/p/" + strconv.Itoa(broken) + ".html", served: map[string]int{}}
	h := synthsite.New(cfg)
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == s.broken && !s.fixed.Load() {
			http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
			return
		}
		if strings.HasPrefix(r.URL.Path, "/p/") {
			s.mu.Lock()
			s.served[r.URL.Path]++
			s.mu.Unlock()
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(s.Close)
	return s
}

// servedTwice lists the pages served more than once.
func (s *brokenSite) servedTwice() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for p, n := range s.served {
		if n > 1 {
			out = append(out, p+" x"+strconv.Itoa(n))
		}
	}
	return out
}

// TestCrawlRequeue drives `crawlmesh crawl requeue` as an operator would:
// a page fails until the site is fixed, so it ends in the dead letters
// and the crawl completes without its item; after the fix, `crawl
// requeue ID --seq N` puts it back, the completed crawl runs again and
// completes with every item exactly once, the dead letter gone, and no
// page it links to fetched again (its seen-set was kept). A second
// re-queue and a re-queue in a cancelled crawl are refused with the reason.
func TestCrawlRequeue(t *testing.T) {
	const pages, broken = 40, 3
	cfg := synthsite.Config{Pages: pages}
	site := newBrokenSite(t, cfg, broken)
	m := harness.StartMesh(t, harness.MeshConfig{Workers: 2, MaxAttempts: 2})
	m.CLI.Apply(synthsite.Spec("fixme", site.URL, cfg))
	id := m.CLI.Start("fixme")
	if _, errOut, code := m.CLI.Run("crawl", "wait", id); code != 0 {
		t.Fatalf("crawl wait: exit %d\n%s", code, errOut)
	}
	st := m.CLI.Status(id)
	if st.State != mesh.CrawlCompleted || st.Dead != 1 {
		t.Fatalf("before the fix: %+v; want completed with 1 dead letter", st)
	}
	harness.CheckItems(t, m.CLI.Export(id), truthWithout(pages, broken))
	var dl []crawlctl.DeadLetter
	if err := json.Unmarshal([]byte(m.CLI.Must("crawl", "deadletters", id, "-o", "json")), &dl); err != nil {
		t.Fatal(err)
	}
	if len(dl) != 1 || !strings.HasSuffix(dl[0].URL, site.broken) || !strings.Contains(dl[0].Reason, "503") || dl[0].Seq == 0 {
		t.Fatalf("dead letters %+v; want %s with its 503 and its seq", dl, site.broken)
	}
	// doctor names the crawl with dead letters (it gave a count alone).
	if out, _, _ := m.CLI.Run("doctor"); !strings.Contains(out, "1 task(s) in the dead-letter stream DEADLETTER (crawl "+id+": 1)") {
		t.Errorf("doctor does not name the crawl with a dead letter:\n%s", out)
	}
	table := m.CLI.Must("crawl", "deadletters", id)
	if !strings.Contains(table, "SEQ") || !strings.Contains(table, strconv.FormatUint(dl[0].Seq, 10)+"  ") {
		t.Errorf("crawl deadletters table shows no SEQ:\n%s", table)
	}

	site.fixed.Store(true)
	_, errOut, code := m.CLI.Run("crawl", "requeue", id, "--seq", strconv.FormatUint(dl[0].Seq, 10))
	if code != 0 || !strings.Contains(errOut, "1 dead letter(s) re-queued") || !strings.Contains(errOut, "runs again") {
		t.Fatalf("crawl requeue: exit %d\n%s", code, errOut)
	}
	if _, errOut, code := m.CLI.Run("crawl", "wait", id); code != 0 {
		t.Fatalf("crawl wait after the re-queue: exit %d\n%s", code, errOut)
	}
	st = m.CLI.Status(id)
	if st.State != mesh.CrawlCompleted || st.Dead != 0 || st.Items != pages || st.PagesOK != pages {
		t.Errorf("after the re-queue: %+v; want completed, 0 dead, %d pages and items", st, pages)
	}
	harness.CheckItems(t, m.CLI.Export(id), truthWithout(pages))
	if twice := site.servedTwice(); len(twice) > 0 {
		t.Errorf("pages fetched again after the re-queue (the seen-set was lost): %v", twice)
	}
	if dl := m.DeadLetters(id); len(dl) != 0 {
		t.Errorf("dead letters after the re-queue: %v", dl)
	}
	if _, errOut, code := m.CLI.Run("crawl", "requeue", id, "--all"); code != 1 || !strings.Contains(errOut, "no longer keeps") {
		t.Errorf("second re-queue: exit %d, want 1 and the reason:\n%s", code, errOut)
	}

	// A cancelled crawl's dead letters are not re-queued. With one attempt
	// (cluster config, applied live) the broken page is dead-lettered on
	// its first try, early in a crawl of 40 pages at 2 a second, so the
	// crawl still runs when the cancel comes; a retried page is tried
	// again only at the crawl's end, where the crawl could complete first.
	site.fixed.Store(false)
	m.CLI.Must("config", "set", "max_attempts", "1", "--role", "worker")
	cm := configMesh{m, t}
	for _, w := range []string{"w1", "w2"} {
		cm.waitBeat(w, "max_attempts 1", func(hb mesh.Heartbeat) bool { return value(hb, clusterconfig.MaxAttempts).Value == "1" })
	}
	m.CLI.Apply(strings.Replace(synthsite.Spec("slow", site.URL, cfg), "delay: 0s", "delay: 500ms", 1))
	id2 := m.CLI.Start("slow")
	harness.Eventually(t, 60*time.Second, "a dead letter in crawl "+id2, func() bool { return len(m.DeadLetters(id2)) > 0 })
	m.CLI.Must("crawl", "cancel", id2)
	if _, errOut, code := m.CLI.Run("crawl", "requeue", id2, "--all"); code != 1 || !strings.Contains(errOut, "was cancelled") {
		t.Errorf("re-queue in a cancelled crawl: exit %d, want 1 and the reason:\n%s", code, errOut)
	}
}
