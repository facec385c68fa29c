package crawler_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/crawlmesh/crawlmesh/pkg/crawler"
	"github.com/crawlmesh/crawlmesh/pkg/mesh"
)

// A link too long for any real page is left out, and said so on the
// page's line; the page and its other links go on. Its task passed the
// work queue's message limit, and the refusal, taken for a NATS outage,
// had the page fetched again and again at no cost (found by review).
func TestLongLinkLeftOut(t *testing.T) {
	e := newEnv(t)
	mux := http.NewServeMux()
	mux.HandleFunc("/{$}", html(`<a href="/leaf?q=`+strings.Repeat("y", 70_000)+`">long</a><a href="/a">a</a>`))
	mux.HandleFunc("/a", html(`ok`))
	s := newSite(t, mux)
	e.putCrawl(t, mesh.CrawlRunning, s.spec(t, "follow: [a]\npoliteness: {robots_txt: false}\n"))
	seeds := e.seed(t, 0, s.URL+"/")
	w := e.worker(crawler.Config{})
	w.Handle(t.Context(), e.next(t, seeds[0].ID))
	e.pendingIs(t, 1) // /a
	if tk := e.queued(t); len(tk) != 1 || !strings.HasSuffix(tk[0].URL, "/a") {
		t.Fatalf("queued %+v, want /a alone", tk)
	}
	if n := e.counter(t, mesh.StatOK); n != 1 {
		t.Errorf("pages ok %d, want 1", n)
	}
	entries := e.logEntries(t)
	if len(entries) != 1 || entries[0].Outcome != "ok" || len(entries[0].Warnings) != 1 || !strings.Contains(entries[0].Warnings[0], "1 links longer than 8192 bytes left out") {
		t.Errorf("log entries %+v, want the ok line saying one link was left out", entries)
	}
}

// What JetStream refuses outright (here: a task over the work queue's
// message size) fails the page at once; it is no outage to wait out.
func TestRefusedPublishFailsThePage(t *testing.T) {
	e := newEnv(t)
	s := shop(t)
	e.putCrawl(t, mesh.CrawlRunning, s.spec(t, shopRules+"politeness: {robots_txt: false}\n"))
	seeds := e.seed(t, 0, s.URL+"/")
	str, err := e.js.Stream(t.Context(), mesh.TasksStream)
	if err != nil {
		t.Fatal(err)
	}
	cfg := str.CachedInfo().Config
	cfg.MaxMsgSize = 64 // smaller than any task
	if _, err := e.js.UpdateStream(t.Context(), cfg); err != nil {
		t.Fatal(err)
	}
	w := e.worker(crawler.Config{MaxAttempts: 3})
	w.Handle(t.Context(), e.next(t, seeds[0].ID))
	e.pendingIs(t, 0)
	if n := e.counter(t, mesh.StatFailed); n != 1 {
		t.Errorf("pages failed %d, want 1", n)
	}
	if s.hitsOf("/") != 1 {
		t.Errorf("/ fetched %d times, want once", s.hitsOf("/"))
	}
}
