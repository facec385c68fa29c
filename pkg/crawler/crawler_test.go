package crawler_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/goleak"

	"github.com/crawlmesh/crawlmesh/pkg/crawlctl"
	"github.com/crawlmesh/crawlmesh/pkg/crawler"
	"github.com/crawlmesh/crawlmesh/pkg/fetch"
	"github.com/crawlmesh/crawlmesh/pkg/mesh"
	"github.com/crawlmesh/crawlmesh/pkg/natstest"
	"github.com/crawlmesh/crawlmesh/pkg/spec"
	"github.com/crawlmesh/crawlmesh/streams"
	"github.com/crawlmesh/crawlmesh/streams/streamstest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const crawlID = "t-20250101000000-abcd"

// env is a real in-process JetStream server with the production assets.
type env struct {
	js     jetstream.JetStream
	crawls jetstream.KeyValue
	seen   jetstream.KeyValue
	pub    *crawler.Publisher
	// shortIDs records crawls with short de-duplication ids, as this
	// version's masters do; false is a crawl an older master recorded.
	shortIDs bool
}

// withShortIDs makes the env record and seed crawls as this version does.
func (e *env) withShortIDs() *env {
	e.shortIDs = true
	e.pub = e.pub.With(mesh.Layout{ShortIDs: true})
	return e
}

func newEnv(t *testing.T) *env {
	t.Helper()
	_, js := streamstest.Start(t, streams.Options{})
	e := &env{js: js, crawls: streamstest.Bucket(t, js, mesh.CrawlsBucket), seen: streamstest.Bucket(t, js, mesh.SeenBucket)}
	e.pub = crawler.NewPublisher(js, e.seen)
	return e
}

// worker is one worker's Crawler (its own fetcher, crawl cache and filter).
func (e *env) worker(cfg crawler.Config) *crawler.Crawler {
	if cfg.Node == "" {
		cfg.Node = "w1"
	}
	return crawler.New(e.js, e.seen, crawler.NewCrawls(e.crawls, nil), fetch.New(fetch.Config{}, nil), cfg)
}

// putCrawl stores a crawl record with sp as its spec.
func (e *env) putCrawl(t *testing.T, state string, sp *spec.Spec) {
	t.Helper()
	sb, err := json.Marshal(sp)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(mesh.Crawl{ID: crawlID, Spider: sp.Name, State: state, Spec: sb, CreatedAt: time.Now().UTC(), ShortIDs: e.shortIDs})
	if _, err := e.crawls.Put(t.Context(), crawlID, b); err != nil {
		t.Fatalf("put crawl: %v", err)
	}
}

func task(rawURL string, depth int) mesh.Task {
	return mesh.Task{ID: mesh.URLHash(rawURL), Crawl: crawlID, Spider: "t", URL: rawURL, Depth: depth}
}

// seed admits and publishes start tasks as the master does.
func (e *env) seed(t *testing.T, maxPages int, urls ...string) []mesh.Task {
	t.Helper()
	var cands []mesh.Task
	for _, u := range urls {
		cands = append(cands, task(u, 0))
	}
	adm, err := e.pub.Admit(t.Context(), crawlID, maxPages, "", false, cands)
	if err != nil {
		t.Fatalf("admit seeds: %v", err)
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
		t.Fatalf("publish seeds: %v", err)
	}
	return adm.Tasks
}

// next pulls task messages from the shared durable until one has task id
// id ("" takes the first); the others stay unacknowledged.
func (e *env) next(t *testing.T, id string) jetstream.Msg {
	t.Helper()
	cons, err := e.js.Consumer(t.Context(), mesh.TasksStream, mesh.TasksConsumer)
	if err != nil {
		t.Fatal(err)
	}
	for range 10 {
		batch, err := cons.Fetch(1, jetstream.FetchMaxWait(3*time.Second))
		if err != nil {
			t.Fatalf("fetch: %v", err)
		}
		for m := range batch.Messages() {
			var tk mesh.Task
			_ = json.Unmarshal(m.Data(), &tk)
			if id == "" || tk.ID == id {
				return m
			}
		}
	}
	t.Fatalf("no task %q delivered", id)
	return nil
}

func (e *env) pendingIs(t *testing.T, want uint64) {
	t.Helper()
	natstest.Eventually(t, 5*time.Second, fmt.Sprintf("%d tasks pending", want), func() bool {
		n, err := crawler.Pending(t.Context(), e.js, crawlID, 1)
		if err != nil {
			t.Fatal(err)
		}
		return n == want
	})
}

func (e *env) counter(t *testing.T, name string) int64 {
	t.Helper()
	n, err := crawler.ReadCounter(t.Context(), e.js, crawlID, name, 1)
	if err != nil {
		t.Fatalf("counter %s: %v", name, err)
	}
	return n
}

// subjectCount is the number of messages stored on subj in stream.
func (e *env) subjectCount(t *testing.T, stream, subj string) uint64 {
	t.Helper()
	s, err := e.js.Stream(t.Context(), stream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(t.Context(), jetstream.WithSubjectFilter(subj))
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Subjects[subj]
}

// items is the crawl's item count: RESULTS counts them (workers keep no
// items counter).
func (e *env) items(t *testing.T) int64 {
	t.Helper()
	return int64(e.subjectCount(t, mesh.ResultsStream, mesh.ResultSubject(crawlID)))
}

// results reads the crawl's items with an ordered consumer.
func (e *env) results(t *testing.T) []mesh.Item {
	t.Helper()
	n := int(e.subjectCount(t, mesh.ResultsStream, mesh.ResultSubject(crawlID)))
	if n == 0 {
		return nil
	}
	cons, err := e.js.OrderedConsumer(t.Context(), mesh.ResultsStream, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{mesh.ResultSubject(crawlID)},
	})
	if err != nil {
		t.Fatal(err)
	}
	var items []mesh.Item
	for range 5 {
		batch, err := cons.Fetch(n-len(items), jetstream.FetchMaxWait(2*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		for m := range batch.Messages() {
			var it mesh.Item
			if err := json.Unmarshal(m.Data(), &it); err != nil {
				t.Fatalf("item %s: %v", m.Data(), err)
			}
			items = append(items, it)
		}
		if len(items) >= n {
			return items
		}
	}
	t.Fatalf("read %d of %d results", len(items), n)
	return nil
}

// deadLetter returns the last dead letter of crawl.
func (e *env) deadLetter(t *testing.T, crawl string) *jetstream.RawStreamMsg {
	t.Helper()
	s, err := e.js.Stream(t.Context(), mesh.DeadStream)
	if err != nil {
		t.Fatal(err)
	}
	m, err := s.GetLastMsgForSubject(t.Context(), mesh.DeadSubject(crawl))
	if err != nil {
		t.Fatalf("no dead letter for %s: %v", crawl, err)
	}
	return m
}

// site is an httptest server counting requests per path.
type site struct {
	*httptest.Server
	mu   sync.Mutex
	hits map[string]int
}

func newSite(t *testing.T, mux *http.ServeMux) *site {
	t.Helper()
	s := &site{hits: map[string]int{}}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.hits[r.URL.Path]++
		s.mu.Unlock()
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *site) hitsOf(path string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hits[path]
}

func (s *site) total() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, v := range s.hits {
		n += v
	}
	return n
}

func (s *site) spec(t *testing.T, extra string) *spec.Spec {
	t.Helper()
	src := fmt.Sprintf("name: t\nstart_urls: [%q]\nallowed_domains: [%q]\n%s", s.URL+"/", strings.TrimPrefix(s.URL, "http://"), extra)
	sp, err := spec.Parse([]byte(src))
	if err != nil {
		t.Fatalf("spec: %v", err)
	}
	return sp
}

func html(body string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write([]byte(body))
	}
}

// shop is a home page with two items and links to /a and /b.
func shop(t *testing.T) *site {
	mux := http.NewServeMux()
	mux.HandleFunc("/{$}", html(`<div class="item">Tea</div><div class="item">Cup</div>
<a href="/a">a</a><a href="/b">b</a><a href="/a#again">a again</a><a href="http://other.example/">away</a>`))
	mux.HandleFunc("/a", html(`<a href="/">home</a>`))
	mux.HandleFunc("/b", html(`<a href="/">home</a>`))
	return newSite(t, mux)
}

const shopRules = "follow: [a]\nitems: [{selector: div.item, fields: {name: {css: ''}}}]\n"

func urls(base string, paths ...string) []mesh.Task {
	var out []mesh.Task
	for _, p := range paths {
		out = append(out, task(base+p, 1))
	}
	return out
}

func taskURLs(ts []mesh.Task) []string {
	var out []string
	for _, tk := range ts {
		out = append(out, tk.URL)
	}
	slices.Sort(out)
	return out
}

func TestAdmitClaims(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	cands := urls("http://example.com", "/1", "/2", "/3")

	adm, err := e.pub.Admit(ctx, crawlID, 0, "p1", false, cands)
	if err != nil {
		t.Fatal(err)
	}
	if len(adm.Tasks) != 3 || adm.Skipped != 0 {
		t.Fatalf("first admit: %d tasks, %d skipped; want 3, 0", len(adm.Tasks), adm.Skipped)
	}
	ent, err := e.seen.Get(ctx, mesh.SeenKey(crawlID, cands[0].ID))
	if err != nil || string(ent.Value()) != "p1" {
		t.Errorf("seen key: %v %v, want value p1", ent, err)
	}

	adm, err = e.pub.Admit(ctx, crawlID, 0, "p1", false, cands)
	if err != nil {
		t.Fatal(err)
	}
	if len(adm.Tasks) != 0 || adm.Skipped != 3 {
		t.Errorf("second admit: %d tasks, %d skipped; want 0, 3", len(adm.Tasks), adm.Skipped)
	}

	adm, err = e.pub.Admit(ctx, crawlID, 0, "p1", true, cands)
	if err != nil {
		t.Fatal(err)
	}
	if got := taskURLs(adm.Tasks); !slices.Equal(got, taskURLs(cands)) || adm.Skipped != 0 {
		t.Errorf("redelivered admit by the claimer: %q, %d skipped; want all its claims", got, adm.Skipped)
	}

	adm, err = e.pub.Admit(ctx, crawlID, 0, "p2", true, cands)
	if err != nil {
		t.Fatal(err)
	}
	if len(adm.Tasks) != 0 || adm.Skipped != 3 {
		t.Errorf("redelivered admit by another parent: %d tasks, %d skipped; want 0, 3", len(adm.Tasks), adm.Skipped)
	}

	mixed := append(urls("http://example.com", "/4"), cands[0])
	adm, err = e.pub.Admit(ctx, crawlID, 0, "p2", false, mixed)
	if err != nil {
		t.Fatal(err)
	}
	if len(adm.Tasks) != 1 || adm.Tasks[0].URL != "http://example.com/4" || adm.Skipped != 1 {
		t.Errorf("mixed admit: %v, %d skipped; want only /4", adm.Tasks, adm.Skipped)
	}

	// Another crawl has its own seen-set.
	other := cands[0]
	other.Crawl = "other-crawl"
	adm, err = e.pub.Admit(ctx, "other-crawl", 0, "p1", false, []mesh.Task{other})
	if err != nil || len(adm.Tasks) != 1 {
		t.Errorf("same URL in another crawl: %v, %v; want admitted", adm, err)
	}
}

func TestAdmitMaxPages(t *testing.T) {
	e := newEnv(t)
	cands := urls("http://example.com", "/1", "/2", "/3", "/4", "/5")
	adm, err := e.pub.Admit(t.Context(), crawlID, 3, "p1", false, cands)
	if err != nil {
		t.Fatal(err)
	}
	if len(adm.Tasks) != 3 || adm.Skipped != 2 {
		t.Fatalf("%d admitted, %d skipped; want 3, 2", len(adm.Tasks), adm.Skipped)
	}
	adm, err = e.pub.Admit(t.Context(), crawlID, 3, "p2", false, urls("http://example.com", "/6"))
	if err != nil {
		t.Fatal(err)
	}
	if len(adm.Tasks) != 0 {
		t.Errorf("admitted %v past max_pages", adm.Tasks)
	}
}

// A parent redelivered after its worker died between Admit and publishing
// its children must get back the children it was admitted the first time,
// or they are lost to the crawl for good (their seen keys are taken).
func TestAdmitMaxPagesRedelivered(t *testing.T) {
	e := newEnv(t)
	cands := urls("http://example.com", "/1", "/2", "/3", "/4", "/5")
	first, err := e.pub.Admit(t.Context(), crawlID, 3, "p1", false, cands)
	if err != nil {
		t.Fatal(err)
	}
	again, err := e.pub.Admit(t.Context(), crawlID, 3, "p1", true, cands)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := taskURLs(again.Tasks), taskURLs(first.Tasks); !slices.Equal(got, want) {
		t.Errorf("redelivered parent admitted %q, want its first admission %q", got, want)
	}
}

func TestHandle(t *testing.T) {
	e := newEnv(t)
	s := shop(t)
	e.putCrawl(t, mesh.CrawlRunning, s.spec(t, shopRules))
	home := s.URL + "/"
	seeds := e.seed(t, 0, home)
	if len(seeds) != 1 {
		t.Fatalf("seeds %v", seeds)
	}
	e.pendingIs(t, 1)

	e.worker(crawler.Config{}).Handle(t.Context(), e.next(t, seeds[0].ID))

	items := e.results(t)
	var names []string
	for _, it := range items {
		names = append(names, it.Text("name"))
		if it.URL != home || it.Crawl != crawlID || it.Spider != "t" || it.Depth != 0 || it.FetchedAt.IsZero() {
			t.Errorf("item %+v", it)
		}
	}
	if !slices.Equal(names, []string{"Tea", "Cup"}) {
		t.Errorf("items %q, want Tea, Cup", names)
	}
	// The seed left the work queue; its two children are in it.
	e.pendingIs(t, 2)
	var children []mesh.Task
	for range 2 {
		m := e.next(t, "")
		var tk mesh.Task
		if err := json.Unmarshal(m.Data(), &tk); err != nil {
			t.Fatal(err)
		}
		if m.Subject() != mesh.TaskSubject(crawlID) || tk.Depth != 1 || tk.Referrer != home || tk.ID != mesh.URLHash(tk.URL) {
			t.Errorf("child task %s on %s", m.Data(), m.Subject())
		}
		children = append(children, tk)
	}
	if got, want := taskURLs(children), []string{s.URL + "/a", s.URL + "/b"}; !slices.Equal(got, want) {
		t.Errorf("children %q, want %q", got, want)
	}
	if ok, n := e.counter(t, mesh.StatOK), e.items(t); ok != 1 || n != 2 {
		t.Errorf("counters ok=%d items=%d, want 1 and 2", ok, n)
	}
	natstest.Eventually(t, 5*time.Second, "task log entry", func() bool {
		return e.subjectCount(t, mesh.LogsStream, mesh.LogSubject(crawlID)) > 0
	})
}

func TestHandleMaxPages(t *testing.T) {
	e := newEnv(t)
	s := shop(t)
	// max_pages 2: the seed and one child.
	e.putCrawl(t, mesh.CrawlRunning, s.spec(t, shopRules+"max_pages: 2\n"))
	seeds := e.seed(t, 2, s.URL+"/")
	e.worker(crawler.Config{}).Handle(t.Context(), e.next(t, seeds[0].ID))
	e.pendingIs(t, 1)
	if n := e.counter(t, mesh.StatOK); n != 1 {
		t.Errorf("ok = %d", n)
	}
}

func TestHandleMaxDepth(t *testing.T) {
	e := newEnv(t)
	s := shop(t)
	e.putCrawl(t, mesh.CrawlRunning, s.spec(t, shopRules+"max_depth: 1\n"))
	seeds := e.seed(t, 0, s.URL+"/")
	w := e.worker(crawler.Config{})
	w.Handle(t.Context(), e.next(t, seeds[0].ID))
	e.pendingIs(t, 2)
	// A child at depth 1 is fetched, but its links (depth 2) are not followed.
	w.Handle(t.Context(), e.next(t, mesh.URLHash(s.URL+"/a")))
	natstest.Eventually(t, 5*time.Second, "ok counter 2", func() bool { return e.counter(t, mesh.StatOK) == 2 })
	e.pendingIs(t, 1)
}

// A copy of a task handled again (by another worker) adds no item, no child
// and no count twice.
func TestHandleDuplicateTask(t *testing.T) {
	e := newEnv(t)
	s := shop(t)
	e.putCrawl(t, mesh.CrawlRunning, s.spec(t, shopRules))
	seeds := e.seed(t, 0, s.URL+"/")
	e.worker(crawler.Config{Node: "w1"}).Handle(t.Context(), e.next(t, seeds[0].ID))
	e.pendingIs(t, 2)
	if n := e.subjectCount(t, mesh.ResultsStream, mesh.ResultSubject(crawlID)); n != 2 {
		t.Fatalf("%d results after the first run, want 2", n)
	}

	// The same task bytes again, without a de-duplication id.
	b, _ := json.Marshal(seeds[0])
	if _, err := e.js.Publish(t.Context(), mesh.TaskSubject(crawlID), b); err != nil {
		t.Fatal(err)
	}
	e.pendingIs(t, 3)
	e.worker(crawler.Config{Node: "w2"}).Handle(t.Context(), e.next(t, seeds[0].ID))

	e.pendingIs(t, 2)
	if n := e.subjectCount(t, mesh.ResultsStream, mesh.ResultSubject(crawlID)); n != 2 {
		t.Errorf("%d results after the copy ran, want still 2", n)
	}
	if ok, n := e.counter(t, mesh.StatOK), e.items(t); ok != 1 || n != 2 {
		t.Errorf("counters ok=%d items=%d, want 1 and 2", ok, n)
	}
}

// crashed is a delivered task whose worker dies right after the work: the
// ack never reaches the server, so the message is delivered again.
type crashed struct{ jetstream.Msg }

func (crashed) Ack() error { return nil }

// A task redelivered after its worker died before the ack is counted once
// and stores its items once, whether the crawl carries short ids (this
// version's) or the long ones of a crawl recorded before them.
func TestHandleRedelivered(t *testing.T) {
	for _, short := range []bool{true, false} {
		t.Run(fmt.Sprintf("short_ids=%v", short), func(t *testing.T) {
			e := newEnv(t)
			if short {
				e.withShortIDs()
			}
			testHandleRedelivered(t, e)
		})
	}
}

func testHandleRedelivered(t *testing.T, e *env) {
	s := shop(t)
	e.putCrawl(t, mesh.CrawlRunning, s.spec(t, shopRules))
	seeds := e.seed(t, 0, s.URL+"/")
	m := e.next(t, seeds[0].ID)
	e.worker(crawler.Config{Node: "w1"}).Handle(t.Context(), crashed{m})
	e.pendingIs(t, 3) // the unacked seed and its two children
	if err := m.Nak(); err != nil {
		t.Fatal(err)
	}

	m = e.next(t, seeds[0].ID)
	md, err := m.Metadata()
	if err != nil || md.NumDelivered != 2 {
		t.Fatalf("metadata %+v, %v; want a second delivery", md, err)
	}
	e.worker(crawler.Config{Node: "w2"}).Handle(t.Context(), m)

	e.pendingIs(t, 2)
	if n := e.subjectCount(t, mesh.ResultsStream, mesh.ResultSubject(crawlID)); n != 2 {
		t.Errorf("%d results after the redelivery, want 2", n)
	}
	if ok, n := e.counter(t, mesh.StatOK), e.items(t); ok != 1 || n != 2 {
		t.Errorf("counters ok=%d items=%d, want 1 and 2", ok, n)
	}
}

// A worker died after claiming the children of a task but before
// publishing them: the redelivered task must publish them itself, since
// nobody else can claim them any more.
func TestHandleRedeliveredAfterClaims(t *testing.T) {
	for _, c := range []struct {
		name     string
		maxPages int
		want     []string // children in the queue after the redelivery
	}{
		{"unlimited", 0, []string{"/a", "/b"}},
		// Seed 1, /a 2, /b over the budget: /a must survive the redelivery.
		{"max_pages", 2, []string{"/a"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t)
			s := shop(t)
			e.putCrawl(t, mesh.CrawlRunning, s.spec(t, shopRules+fmt.Sprintf("max_pages: %d\n", c.maxPages)))
			seeds := e.seed(t, c.maxPages, s.URL+"/")
			m := e.next(t, seeds[0].ID)
			// What the dead worker did before dying.
			if _, err := e.pub.Admit(t.Context(), crawlID, c.maxPages, seeds[0].ID, false, urls(s.URL, "/a", "/b")); err != nil {
				t.Fatal(err)
			}
			if err := m.Nak(); err != nil {
				t.Fatal(err)
			}
			e.worker(crawler.Config{Node: "w2"}).Handle(t.Context(), e.next(t, seeds[0].ID))
			e.pendingIs(t, uint64(len(c.want)))
			var got []string
			for range c.want {
				var tk mesh.Task
				_ = json.Unmarshal(e.next(t, "").Data(), &tk)
				got = append(got, strings.TrimPrefix(tk.URL, s.URL))
			}
			slices.Sort(got)
			if !slices.Equal(got, c.want) {
				t.Errorf("children %q, want %q", got, c.want)
			}
		})
	}
}

func TestHandlePoison(t *testing.T) {
	e := newEnv(t)
	s := shop(t)
	e.putCrawl(t, mesh.CrawlRunning, s.spec(t, shopRules))
	w := e.worker(crawler.Config{Node: "w9"})
	for _, c := range []struct {
		data   string
		reason string
	}{
		{"not json", "undecodable"},
		{`{"crawl":"` + crawlID + `"}`, "missing"},
	} {
		if _, err := e.js.Publish(t.Context(), mesh.TaskSubject(crawlID), []byte(c.data)); err != nil {
			t.Fatal(err)
		}
		w.Handle(t.Context(), e.next(t, ""))
		dl := e.deadLetter(t, crawlID)
		if r := dl.Header.Get("Crawlmesh-Reason"); !strings.Contains(r, "undecodable") || !strings.Contains(r, c.reason) {
			t.Errorf("%q: reason %q, want undecodable ... %s", c.data, r, c.reason)
		}
		if string(dl.Data) != c.data || dl.Header.Get("Crawlmesh-Node") != "w9" ||
			dl.Header.Get("Crawlmesh-Subject") != mesh.TaskSubject(crawlID) || dl.Header.Get("Crawlmesh-Attempts") != "1" {
			t.Errorf("%q: dead letter %q with headers %v", c.data, dl.Data, dl.Header)
		}
		e.pendingIs(t, 0)
	}
	if n := e.counter(t, mesh.StatDead); n != 2 {
		t.Errorf("dead = %d, want 2", n)
	}
	if n := s.total(); n != 0 {
		t.Errorf("%d requests for undecodable tasks", n)
	}
}

func TestHandleUnknownCrawl(t *testing.T) {
	e := newEnv(t)
	tk := task("http://example.com/", 0)
	tk.Crawl = "ghost"
	b, _ := json.Marshal(tk)
	if _, err := e.js.Publish(t.Context(), mesh.TaskSubject("ghost"), b); err != nil {
		t.Fatal(err)
	}
	e.worker(crawler.Config{}).Handle(t.Context(), e.next(t, ""))
	dl := e.deadLetter(t, "ghost")
	if r := dl.Header.Get("Crawlmesh-Reason"); !strings.Contains(r, "unknown crawl") {
		t.Errorf("reason %q, want unknown crawl", r)
	}
	natstest.Eventually(t, 5*time.Second, "ghost task gone", func() bool {
		n, err := crawler.Pending(t.Context(), e.js, "ghost", 1)
		return err == nil && n == 0
	})
}

func TestHandleTransientExhausted(t *testing.T) {
	e := newEnv(t)
	mux := http.NewServeMux()
	mux.HandleFunc("/{$}", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "busy", http.StatusServiceUnavailable)
	})
	s := newSite(t, mux)
	e.putCrawl(t, mesh.CrawlRunning, s.spec(t, shopRules))
	seeds := e.seed(t, 0, s.URL+"/")
	e.worker(crawler.Config{MaxAttempts: 1}).Handle(t.Context(), e.next(t, seeds[0].ID))

	dl := e.deadLetter(t, crawlID)
	if r := dl.Header.Get("Crawlmesh-Reason"); !strings.Contains(r, "503") {
		t.Errorf("reason %q, want the 503", r)
	}
	var tk mesh.Task
	if err := json.Unmarshal(dl.Data, &tk); err != nil || tk.ID != seeds[0].ID {
		t.Errorf("dead letter %s is not the task", dl.Data)
	}
	e.pendingIs(t, 0)
	if d, ok := e.counter(t, mesh.StatDead), e.counter(t, mesh.StatOK); d != 1 || ok != 0 {
		t.Errorf("counters dead=%d ok=%d, want 1 and 0", d, ok)
	}
	// The crawl's logs say so (crawl logs, the console), not only the
	// worker's own log.
	if le, raw := e.lastLog(t); le.Outcome != "dead" || le.URL != s.URL+"/" || !strings.Contains(le.Error, "503") {
		t.Errorf("last log entry %s: want outcome dead for %s/ naming the 503", raw, s.URL)
	}
}

// lastLog waits (at most 5 s) for the crawl's logs and returns the last
// entry, decoded and as stored.
func (e *env) lastLog(t *testing.T) (mesh.LogEntry, []byte) {
	t.Helper()
	natstest.Eventually(t, 5*time.Second, "a log entry", func() bool {
		return e.subjectCount(t, mesh.LogsStream, mesh.LogSubject(crawlID)) > 0
	})
	st, err := e.js.Stream(t.Context(), mesh.LogsStream)
	if err != nil {
		t.Fatal(err)
	}
	m, err := st.GetLastMsgForSubject(t.Context(), mesh.LogSubject(crawlID))
	if err != nil {
		t.Fatal(err)
	}
	var le mesh.LogEntry
	if err := json.Unmarshal(m.Data, &le); err != nil {
		t.Fatalf("log entry %s: %v", m.Data, err)
	}
	return le, m.Data
}

func TestHandleTransientRetried(t *testing.T) {
	e := newEnv(t)
	var calls sync.Map
	mux := http.NewServeMux()
	mux.HandleFunc("/{$}", func(w http.ResponseWriter, r *http.Request) {
		if _, again := calls.LoadOrStore("home", true); !again {
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return
		}
		html(`<div class="item">Tea</div>`)(w, r)
	})
	s := newSite(t, mux)
	e.putCrawl(t, mesh.CrawlRunning, s.spec(t, shopRules))
	seeds := e.seed(t, 0, s.URL+"/")
	w := e.worker(crawler.Config{MaxAttempts: 2, Backoff: 50 * time.Millisecond})
	w.Handle(t.Context(), e.next(t, seeds[0].ID))
	// Nak'd for a retry: still in the queue, nothing counted.
	e.pendingIs(t, 1)
	if n := e.counter(t, mesh.StatOK) + e.counter(t, mesh.StatDead) + e.counter(t, mesh.StatFailed); n != 0 {
		t.Errorf("counted %d outcomes for a retried task", n)
	}
	w.Handle(t.Context(), e.next(t, seeds[0].ID))
	e.pendingIs(t, 0)
	if ok, n := e.counter(t, mesh.StatOK), e.items(t); ok != 1 || n != 1 {
		t.Errorf("counters ok=%d items=%d after the retry, want 1 and 1", ok, n)
	}
}

func TestHandlePermanentFailure(t *testing.T) {
	e := newEnv(t)
	s := newSite(t, http.NewServeMux()) // every path 404
	e.putCrawl(t, mesh.CrawlRunning, s.spec(t, shopRules))
	seeds := e.seed(t, 0, s.URL+"/")
	e.worker(crawler.Config{}).Handle(t.Context(), e.next(t, seeds[0].ID))
	e.pendingIs(t, 0)
	if f, d := e.counter(t, mesh.StatFailed), e.counter(t, mesh.StatDead); f != 1 || d != 0 {
		t.Errorf("counters failed=%d dead=%d, want 1 and 0", f, d)
	}
}

func TestHandleCancelledCrawl(t *testing.T) {
	e := newEnv(t)
	s := shop(t)
	e.putCrawl(t, mesh.CrawlCancelled, s.spec(t, shopRules))
	seeds := e.seed(t, 0, s.URL+"/")
	e.worker(crawler.Config{}).Handle(t.Context(), e.next(t, seeds[0].ID))
	e.pendingIs(t, 0)
	if n := s.total(); n != 0 {
		t.Errorf("%d requests for a cancelled crawl", n)
	}
	if d, ok := e.counter(t, mesh.StatDropped), e.counter(t, mesh.StatOK); d != 1 || ok != 0 {
		t.Errorf("counters dropped=%d ok=%d, want 1 and 0", d, ok)
	}
	if n := e.subjectCount(t, mesh.ResultsStream, mesh.ResultSubject(crawlID)); n != 0 {
		t.Errorf("%d results for a cancelled crawl", n)
	}
}

// A crawl cancelled while its task waits for a fetch slot (its host's
// turn) is not fetched once the slot comes: the task is dropped.
func TestHandleCancelledWhileWaiting(t *testing.T) {
	e := newEnv(t)
	s := shop(t)
	sp := s.spec(t, shopRules)
	e.putCrawl(t, mesh.CrawlRunning, sp)
	seeds := e.seed(t, 0, s.URL+"/")
	ctx := t.Context()
	crawls := e.runningCrawls(t)
	ended := make(chan struct{}, 1)
	crawls.OnEnd(func(string) {
		select {
		case ended <- struct{}{}:
		default:
		}
	})
	// The slot comes only after the cancel has reached the worker's cache.
	slots := slotsFunc(func(ctx context.Context) error {
		e.putCrawl(t, mesh.CrawlCancelled, sp)
		select {
		case <-ended:
			return nil
		case <-time.After(10 * time.Second):
			return errors.New("the cancel did not reach the crawls cache within 10 s")
		}
	})
	w := crawler.New(e.js, e.seen, crawls, fetch.New(fetch.Config{}, nil), crawler.Config{Node: "w1", Slots: slots})
	w.Handle(ctx, e.next(t, seeds[0].ID))
	e.pendingIs(t, 0)
	s.mu.Lock()
	n := s.hits["/"]
	s.mu.Unlock()
	if n != 0 { // robots.txt was read before the wait, as it should be
		t.Errorf("the page was requested %d times after the crawl was cancelled", n)
	}
	if d, ok := e.counter(t, mesh.StatDropped), e.counter(t, mesh.StatOK); d != 1 || ok != 0 {
		t.Errorf("counters dropped=%d ok=%d, want 1 and 0", d, ok)
	}
}

// runningCrawls is a worker's crawls cache following the bucket until the
// test ends, with the test's crawl known as running.
func (e *env) runningCrawls(t *testing.T) *crawler.Crawls {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	crawls := crawler.NewCrawls(e.crawls, nil)
	var wg sync.WaitGroup
	wg.Go(func() { _ = crawls.Run(ctx) })
	t.Cleanup(func() { cancel(); wg.Wait() })
	if _, err := crawls.Get(ctx, crawlID); err != nil {
		t.Fatal(err)
	}
	return crawls
}

// slotsFunc is a FetchSlots whose Acquire is the function.
type slotsFunc func(ctx context.Context) error

func (f slotsFunc) Acquire(ctx context.Context) error { return f(ctx) }
func (f slotsFunc) Release()                          {}

// A page reached through a redirect to a URL the crawl already has is
// processed once.
func TestHandleRedirectToKnownPage(t *testing.T) {
	e := newEnv(t)
	mux := http.NewServeMux()
	mux.HandleFunc("/a", html(`<div class="item">A</div>`))
	mux.HandleFunc("/r", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/a", http.StatusFound) })
	s := newSite(t, mux)
	e.putCrawl(t, mesh.CrawlRunning, s.spec(t, shopRules))
	seeds := e.seed(t, 0, s.URL+"/a", s.URL+"/r")
	if len(seeds) != 2 {
		t.Fatalf("seeds %v", seeds)
	}
	w := e.worker(crawler.Config{})
	w.Handle(t.Context(), e.next(t, seeds[0].ID))
	w.Handle(t.Context(), e.next(t, seeds[1].ID))
	e.pendingIs(t, 0)
	if n := e.subjectCount(t, mesh.ResultsStream, mesh.ResultSubject(crawlID)); n != 1 {
		t.Errorf("%d results, want 1 (the page once)", n)
	}
	if ok, d := e.counter(t, mesh.StatOK), e.counter(t, mesh.StatDropped); ok != 1 || d != 1 {
		t.Errorf("counters ok=%d dropped=%d, want 1 and 1", ok, d)
	}
}

// A task re-queued from the dead letters reopens its crawl: a worker whose
// cache still says completed reads the record again instead of dropping
// it, and runs it as a redelivered task, so a child it claimed before it
// died (/a) is its own and published, not lost.
func TestHandleRequeued(t *testing.T) {
	e := newEnv(t)
	s := shop(t)
	sp := s.spec(t, shopRules)
	e.putCrawl(t, mesh.CrawlCompleted, sp)
	seeds := e.seed(t, 0, s.URL+"/")
	w := e.worker(crawler.Config{})
	// The worker learns the crawl as completed (its task is dropped).
	w.Handle(t.Context(), e.next(t, seeds[0].ID))
	e.pendingIs(t, 0)
	// What the task did on the attempt that died: it claimed /a.
	if _, err := e.pub.Admit(t.Context(), crawlID, 0, seeds[0].ID, false, urls(s.URL, "/a")); err != nil {
		t.Fatal(err)
	}
	// The re-queue: the record back to running, the task published again.
	e.putCrawl(t, mesh.CrawlRunning, sp)
	rq := seeds[0]
	rq.Requeued = 1
	b, _ := json.Marshal(rq)
	if _, err := e.js.Publish(t.Context(), mesh.TaskSubject(crawlID), b, jetstream.WithMsgID(crawlID+".requeue.1")); err != nil {
		t.Fatal(err)
	}
	w.Handle(t.Context(), e.next(t, rq.ID))
	if n := e.subjectCount(t, mesh.ResultsStream, mesh.ResultSubject(crawlID)); n != 2 {
		t.Errorf("%d results of the re-queued page, want 2", n)
	}
	e.pendingIs(t, 2)
	var got []string
	for range 2 {
		var tk mesh.Task
		_ = json.Unmarshal(e.next(t, "").Data(), &tk)
		got = append(got, strings.TrimPrefix(tk.URL, s.URL))
	}
	slices.Sort(got)
	if !slices.Equal(got, []string{"/a", "/b"}) {
		t.Errorf("children %q, want /a (claimed before) and /b", got)
	}
}

// An item too large for a NATS message fails its page at once, naming the
// item and the limit, and stores none of the page's items: it was retried
// as a publish failure and dead-lettered as "workers died or timed out",
// with the page's small item already stored.
func TestHandleItemTooLarge(t *testing.T) {
	e := newEnv(t)
	mux := http.NewServeMux()
	mux.HandleFunc("/{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		_, _ = io.WriteString(w, `<div class="item">small</div><div class="item">`+strings.Repeat("x", 1200<<10)+`</div><a href="/next">next</a>`)
	})
	s := newSite(t, mux)
	e.putCrawl(t, mesh.CrawlRunning, s.spec(t, shopRules))
	seeds := e.seed(t, 0, s.URL+"/")
	e.worker(crawler.Config{MaxAttempts: 3}).Handle(t.Context(), e.next(t, seeds[0].ID))

	e.pendingIs(t, 0) // failed, not retried; its link not queued either
	if f, d := e.counter(t, mesh.StatFailed), e.counter(t, mesh.StatDead); f != 1 || d != 0 {
		t.Errorf("counters failed=%d dead=%d, want 1 and 0", f, d)
	}
	if n := e.subjectCount(t, mesh.ResultsStream, mesh.ResultSubject(crawlID)); n != 0 {
		t.Errorf("%d items stored of a page that failed", n)
	}
	if le, raw := e.lastLog(t); le.Outcome != "failed" || !strings.Contains(le.Error, "item 1 is") || !strings.Contains(le.Error, "max_payload") {
		t.Errorf("last log entry %s: want the page failed naming item 1 and max_payload", raw)
	}
}

// A jq error on a page's data is a missing value, as a selector matching
// nothing is; the task log says which expression failed and why, and the
// worker logs the crawl's first such page (found by review: the value
// was missing with no word anywhere).
func TestHandleJQWarnings(t *testing.T) {
	e := newEnv(t)
	mux := http.NewServeMux()
	for _, p := range []string{"/{$}", "/next"} {
		mux.HandleFunc(p, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`{"products": [{"name": "Tea", "price": 7}], "next": "/next"}`))
		})
	}
	s := newSite(t, mux)
	e.putCrawl(t, mesh.CrawlRunning, s.spec(t, `links: {json: [.next]}
items:
  - json: ".products[]"
    fields:
      name: {json: .name}
      price: {json: ".price | ascii_downcase"}
`))
	var logs bytes.Buffer
	w := e.worker(crawler.Config{Log: slog.New(slog.NewTextHandler(&logs, nil))})
	seeds := e.seed(t, 0, s.URL+"/")
	w.Handle(t.Context(), e.next(t, seeds[0].ID))
	w.Handle(t.Context(), e.next(t, ""))

	items := e.results(t)
	if len(items) != 2 || items[0].Text("name") != "Tea" || items[0].Data["price"] != nil {
		t.Fatalf("items %+v, want 2 named Tea without a price", items)
	}
	entries := e.logEntries(t)
	want := []string{"items[0].fields.price: ascii_downcase cannot be applied to: number (7)"}
	if len(entries) != 2 {
		t.Fatalf("log entries %+v, want 2", entries)
	}
	for _, le := range entries {
		if le.Outcome != "ok" || !slices.Equal(le.Warnings, want) {
			t.Errorf("log entry %+v, want ok with warnings %q", le, want)
		}
	}
	if n := strings.Count(logs.String(), "a page has warnings"); n != 1 {
		t.Errorf("worker logged the warning %d times, want once a crawl:\n%s", n, logs.String())
	}
}

// At log_level debug a worker logs every page it finishes and every other
// outcome of a task (found by review: debug added almost nothing).
func TestHandleDebugLog(t *testing.T) {
	e := newEnv(t)
	s := shop(t)
	e.putCrawl(t, mesh.CrawlRunning, s.spec(t, shopRules))
	var logs bytes.Buffer
	w := e.worker(crawler.Config{Log: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	seeds := e.seed(t, 0, s.URL+"/", s.URL+"/missing")
	for range seeds {
		w.Handle(t.Context(), e.next(t, ""))
	}
	out := logs.String()
	for _, want := range []string{`msg="page ok"`, "url=" + s.URL + "/ ", `msg="task failed"`, "url=" + s.URL + "/missing", "status=404"} {
		if !strings.Contains(out, want) {
			t.Errorf("debug log lacks %q:\n%s", want, out)
		}
	}
}

// logEntries reads the crawl's log lines.
func (e *env) logEntries(t *testing.T) []mesh.LogEntry {
	t.Helper()
	var entries []mesh.LogEntry
	err := crawlctl.ReadSubject(t.Context(), e.js, mesh.LogsStream, mesh.LogSubject(crawlID), 0, func(b []byte) error {
		var le mesh.LogEntry
		if err := json.Unmarshal(b, &le); err != nil {
			return err
		}
		entries = append(entries, le)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return entries
}
