package crawler_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/crawlmesh/crawlmesh/pkg/crawlctl"
	"github.com/crawlmesh/crawlmesh/pkg/crawler"
	"github.com/crawlmesh/crawlmesh/pkg/mesh"
	"github.com/crawlmesh/crawlmesh/pkg/natstest"
	"github.com/crawlmesh/crawlmesh/streams/streamstest"
)

// queued lists the crawl's tasks on the work queue without consuming them.
func (e *env) queued(t *testing.T) []mesh.Task {
	t.Helper()
	s, err := e.js.Stream(t.Context(), mesh.TasksStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var out []mesh.Task
	for seq := info.State.FirstSeq; info.State.Msgs > 0 && seq <= info.State.LastSeq; seq++ {
		m, err := s.GetMsg(t.Context(), seq)
		if err != nil {
			continue
		}
		var tk mesh.Task
		if json.Unmarshal(m.Data, &tk) == nil && tk.Crawl == crawlID {
			out = append(out, tk)
		}
	}
	return out
}

// seedTasks admits tasks with the given page budget and publishes them.
func (e *env) seedTasks(t *testing.T, maxPages int, tasks ...mesh.Task) {
	t.Helper()
	adm, err := e.pub.Admit(t.Context(), crawlID, maxPages, "", false, tasks)
	if err != nil {
		t.Fatal(err)
	}
	var futs []jetstream.PubAckFuture
	for _, tk := range adm.Tasks {
		f, err := e.pub.PublishTask(tk)
		if err != nil {
			t.Fatal(err)
		}
		futs = append(futs, f)
	}
	if err := crawler.Wait(t.Context(), futs); err != nil {
		t.Fatal(err)
	}
}

func xmlHandler(body string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/xml")
		_, _ = w.Write([]byte(body))
	}
}

func urlset(locs ...string) string {
	var b strings.Builder
	b.WriteString(`<?xml version="1.0" encoding="UTF-8"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">`)
	for _, l := range locs {
		fmt.Fprintf(&b, "<url><loc>%s</loc></url>", l)
	}
	return b.String() + "</urlset>"
}

func sitemapIndex(locs ...string) string {
	var b strings.Builder
	b.WriteString(`<?xml version="1.0" encoding="UTF-8"?><sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">`)
	for _, l := range locs {
		fmt.Fprintf(&b, "<sitemap><loc>%s</loc></sitemap>", l)
	}
	return b.String() + "</sitemapindex>"
}

// sitemapSite serves robots.txt naming an index, the index naming two
// sitemaps, and pages; base is filled in once the server runs.
func sitemapSite(t *testing.T) *site {
	var base string
	mux := http.NewServeMux()
	mux.HandleFunc("/robots.txt", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "User-agent: *\nDisallow: /private\n\nSitemap: %s/index.xml\n", base)
	})
	mux.HandleFunc("/index.xml", func(w http.ResponseWriter, r *http.Request) {
		xmlHandler(sitemapIndex(base+"/sm1.xml", base+"/sm1.xml"))(w, r)
	})
	mux.HandleFunc("/sm1.xml", func(w http.ResponseWriter, r *http.Request) {
		xmlHandler(urlset(base+"/p/1", base+"/p/2?utm_source=x&amp;id=2", base+"/cart/1", "http://other.example/p/9",
			base+"/p/1", base+"/p/3"))(w, r)
	})
	mux.HandleFunc("/deep.xml", func(w http.ResponseWriter, r *http.Request) {
		xmlHandler(sitemapIndex(base+"/sm1.xml"))(w, r)
	})
	mux.HandleFunc("/p/", html(`<p>page</p>`))
	s := newSite(t, mux)
	base = s.URL
	return s
}

const sitemapRules = "sitemaps: [robots]\nlinks: {deny: [\"/cart\"], strip_query: [\"utm_*\"]}\n"

// TestHandleSitemap: robots.txt -> index -> sitemap -> page tasks at depth
// 0 that passed the link rules; sitemap tasks are not pages.
func TestHandleSitemap(t *testing.T) {
	e := newEnv(t)
	s := sitemapSite(t)
	e.putCrawl(t, mesh.CrawlRunning, s.spec(t, sitemapRules))
	robots := crawler.SitemapTask(crawlID, "t", s.URL+"/robots.txt", 0, "")
	e.seedTasks(t, 0, robots)
	w := e.worker(crawler.Config{})

	w.Handle(t.Context(), e.next(t, robots.ID))
	e.pendingIs(t, 1)
	q := e.queued(t)
	// robots.txt is not a level: the index it names is as deep as a
	// sitemap given by URL.
	want := crawler.SitemapTask(crawlID, "t", s.URL+"/index.xml", 0, robots.URL)
	if len(q) != 1 || q[0] != want {
		t.Fatalf("after robots.txt: %+v, want %+v", q, want)
	}
	w.Handle(t.Context(), e.next(t, want.ID))
	e.pendingIs(t, 1)
	q = e.queued(t)
	want = crawler.SitemapTask(crawlID, "t", s.URL+"/sm1.xml", 1, want.URL)
	if len(q) != 1 || q[0] != want {
		t.Fatalf("after the index: %+v, want %+v (listed twice, one task)", q, want)
	}
	w.Handle(t.Context(), e.next(t, want.ID))
	e.pendingIs(t, 3)
	var got []string
	for _, tk := range e.queued(t) {
		if tk.Kind != mesh.TaskPage || tk.Depth != 0 || tk.ID != mesh.URLHash(tk.URL) || tk.Referrer != want.URL {
			t.Errorf("page task %+v", tk)
		}
		got = append(got, tk.URL)
	}
	slices.Sort(got)
	if wantURLs := []string{s.URL + "/p/1", s.URL + "/p/2?id=2", s.URL + "/p/3"}; !slices.Equal(got, wantURLs) {
		t.Errorf("page tasks %q, want %q (denied, foreign and duplicate URLs left out, utm_ stripped)", got, wantURLs)
	}
	if n := e.counter(t, mesh.StatSitemaps); n != 3 {
		t.Errorf("sitemaps counter = %d, want 3", n)
	}
	if n := e.counter(t, mesh.StatAdmitted) + e.counter(t, mesh.StatOK); n != 0 {
		t.Errorf("admitted+ok = %d, want 0: sitemaps are not pages (no max_pages here)", n)
	}
	// A page listed by a sitemap is fetched as any page.
	w.Handle(t.Context(), e.next(t, mesh.URLHash(s.URL+"/p/1")))
	natstest.Eventually(t, 5*time.Second, "page fetched", func() bool { return e.counter(t, mesh.StatOK) == 1 })
}

// TestHandleSitemapLimits: an index at the maximum depth adds no sitemap,
// and pages from a sitemap count toward max_pages (sitemaps do not).
func TestHandleSitemapLimits(t *testing.T) {
	e := newEnv(t)
	s := sitemapSite(t)
	e.putCrawl(t, mesh.CrawlRunning, s.spec(t, sitemapRules+"max_pages: 2\n"))
	deep := crawler.SitemapTask(crawlID, "t", s.URL+"/deep.xml", crawler.MaxSitemapDepth, "")
	sm := crawler.SitemapTask(crawlID, "t", s.URL+"/sm1.xml", 0, "")
	e.seedTasks(t, 0, deep, sm) // as the master seeds sitemaps: outside the budget
	if n := e.counter(t, mesh.StatAdmitted); n != 0 {
		t.Fatalf("admitted = %d after seeding sitemaps, want 0", n)
	}
	w := e.worker(crawler.Config{})
	w.Handle(t.Context(), e.next(t, deep.ID))
	e.pendingIs(t, 1)
	w.Handle(t.Context(), e.next(t, sm.ID))
	e.pendingIs(t, 2)
	if n := e.counter(t, mesh.StatAdmitted); n != 2 {
		t.Errorf("admitted = %d, want 2 (max_pages)", n)
	}
	for _, tk := range e.queued(t) {
		if tk.Kind != mesh.TaskPage {
			t.Errorf("queued %+v, want only pages", tk)
		}
	}

	// With the budget spent, a sitemap still queued is dropped unread: an
	// index of thousands would otherwise cost the site thousands of
	// requests whose every URL is refused.
	more := crawler.SitemapTask(crawlID, "t", s.URL+"/index.xml", 0, "")
	e.seedTasks(t, 0, more)
	w.Handle(t.Context(), e.next(t, more.ID))
	e.pendingIs(t, 2)
	if n := s.hitsOf("/index.xml"); n != 0 {
		t.Errorf("index.xml requested %d times with max_pages spent, want 0", n)
	}
	if n := e.counter(t, mesh.StatDropped); n != 1 {
		t.Errorf("dropped = %d, want 1 (the unread sitemap)", n)
	}
	if le, _ := e.lastLog(t); le.Outcome != "dropped" || !strings.Contains(le.Error, "max_pages") {
		t.Errorf("log entry %+v: want dropped, naming max_pages", le)
	}
}

// TestHandleSitemapOtherHost: an index or a robots.txt naming a sitemap
// on a host outside allowed_domains adds no task for it, so the crawl
// requests nothing there.
func TestHandleSitemapOtherHost(t *testing.T) {
	e := newEnv(t)
	other := newSite(t, http.NewServeMux())
	var base string
	mux := http.NewServeMux()
	mux.HandleFunc("/robots.txt", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "User-agent: *\nAllow: /\n\nSitemap: %s/a.xml\nSitemap: %s/evil.xml\n", base, other.URL)
	})
	mux.HandleFunc("/index.xml", func(w http.ResponseWriter, r *http.Request) {
		xmlHandler(sitemapIndex(base+"/a.xml", other.URL+"/evil.xml"))(w, r)
	})
	s := newSite(t, mux)
	base = s.URL
	e.putCrawl(t, mesh.CrawlRunning, s.spec(t, "sitemaps: [robots]\n"))
	w := e.worker(crawler.Config{})
	for _, tk := range []mesh.Task{
		crawler.SitemapTask(crawlID, "t", s.URL+"/robots.txt", 0, ""),
		crawler.SitemapTask(crawlID, "t", s.URL+"/index.xml", 0, ""),
	} {
		e.seedTasks(t, 0, tk)
		w.Handle(t.Context(), e.next(t, tk.ID))
		e.pendingIs(t, 1)
		q := e.queued(t)
		if len(q) != 1 || q[0].URL != s.URL+"/a.xml" {
			t.Fatalf("after %s: queued %+v, want only %s/a.xml", tk.URL, q, s.URL)
		}
	}
	if n := other.total(); n != 0 {
		t.Errorf("%d requests to the host outside allowed_domains, want 0", n)
	}
}

// TestHandleCrawlLevelFailure: a failed login fails the crawl through the
// masters (not a pile of dead letters), and the password is nowhere.
func TestHandleCrawlLevelFailure(t *testing.T) {
	const secret = "pw-9f3c1e77"
	t.Setenv("CRAWLMESH_TEST_LOGIN_PW", secret)
	e := newEnv(t)
	mux := http.NewServeMux()
	mux.HandleFunc("/login", func(w http.ResponseWriter, r *http.Request) { http.Error(w, "no", http.StatusUnauthorized) })
	mux.HandleFunc("/", html(`<p>x</p>`))
	s := newSite(t, mux)
	e.putCrawl(t, mesh.CrawlRunning, s.spec(t, fmt.Sprintf("login: {url: %q, form: {user: u, password: \"${env:CRAWLMESH_TEST_LOGIN_PW}\"}}\n", s.URL+"/login")))
	seeds := e.seed(t, 0, s.URL+"/", s.URL+"/a", s.URL+"/b")

	spiders := streamstest.Bucket(t, e.js, mesh.SpidersBucket)
	ctl := crawlctl.New(e.js, spiders, e.crawls, e.seen, nil)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); _ = ctl.Serve(ctx, e.js.Conn()) }()
	defer func() { cancel(); <-done }()
	// Serve subscribes asynchronously: wait until the subject has a responder.
	natstest.Eventually(t, 5*time.Second, "master serving", func() bool {
		_, err := e.js.Conn().Request(mesh.APICrawlStart, []byte(`{`), time.Second)
		return err == nil
	})

	w := e.worker(crawler.Config{Node: "w1"})
	w.Handle(t.Context(), e.next(t, seeds[0].ID))
	cr, _, err := crawler.ReadCrawl(t.Context(), e.crawls, crawlID)
	if err != nil {
		t.Fatal(err)
	}
	if cr.State != mesh.CrawlFailed || !strings.Contains(cr.Error, "login") || strings.Contains(cr.Error, secret) {
		t.Errorf("crawl record state %q error %q: want failed naming the login, without the password", cr.State, cr.Error)
	}
	e.pendingIs(t, 0) // the failed crawl's tasks are purged
	if n := e.subjectCount(t, mesh.DeadStream, mesh.DeadSubject(crawlID)); n != 0 {
		t.Errorf("%d dead letters, want none", n)
	}
	if le, raw := e.lastLog(t); le.Outcome != "crawl-failed" || strings.Contains(string(raw), secret) {
		t.Errorf("log entry %s: want outcome crawl-failed without the password", raw)
	}
}

// TestCrawlsOnEnd: the watch tells when a running crawl stops running (the
// worker then forgets its login session), once.
func TestCrawlsOnEnd(t *testing.T) {
	e := newEnv(t)
	s := shop(t)
	cs := crawler.NewCrawls(e.crawls, nil)
	ended := make(chan string, 4)
	cs.OnEnd(func(id string) { ended <- id })
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); _ = cs.Run(ctx) }()
	defer func() { cancel(); <-done }()
	e.putCrawl(t, mesh.CrawlRunning, s.spec(t, ""))
	natstest.Eventually(t, 5*time.Second, "crawl cached", func() bool {
		ci, err := cs.Get(t.Context(), crawlID)
		return err == nil && ci.State == mesh.CrawlRunning
	})
	e.putCrawl(t, mesh.CrawlFailed, s.spec(t, ""))
	e.putCrawl(t, mesh.CrawlFailed, s.spec(t, ""))
	select {
	case id := <-ended:
		if id != crawlID {
			t.Errorf("ended %q", id)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no end reported")
	}
	time.Sleep(200 * time.Millisecond)
	if len(ended) != 0 {
		t.Errorf("end reported %d more times", len(ended))
	}
}
