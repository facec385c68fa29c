package crawler_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/crawlmesh/crawlmesh/pkg/crawler"
	"github.com/crawlmesh/crawlmesh/pkg/mesh"
	"github.com/crawlmesh/crawlmesh/streams"
	"github.com/crawlmesh/crawlmesh/streams/streamstest"
)

const parts = 3

// newPartitionedEnv is newEnv on a mesh of 3 partitions, with the crawl
// record saying it started on all 3 and spreading by URL.
func newPartitionedEnv(t *testing.T, s *site) *env {
	t.Helper()
	_, js := streamstest.Start(t, streams.Options{Partitions: parts})
	e := &env{js: js, crawls: streamstest.Bucket(t, js, mesh.CrawlsBucket), seen: streamstest.Bucket(t, js, mesh.SeenBucket)}
	e.pub = crawler.NewPublisher(js, e.seen).With(mesh.NewLayout(parts, mesh.PartitionByURL))
	sb, _ := json.Marshal(s.spec(t, shopRules+"partition_by: url\n"))
	b, _ := json.Marshal(mesh.Crawl{ID: crawlID, Spider: "t", State: mesh.CrawlRunning, Spec: sb, CreatedAt: time.Now().UTC(), Partitions: parts})
	if _, err := e.crawls.Put(t.Context(), crawlID, b); err != nil {
		t.Fatal(err)
	}
	return e
}

// drain hands every task of every partition to w until the queues are
// empty (bounded: the test sites have a dozen pages).
func (e *env) drain(t *testing.T, w *crawler.Crawler) {
	t.Helper()
	for range 20 {
		n := 0
		for p := range parts {
			cons, err := e.js.Consumer(t.Context(), mesh.TasksStreamOf(p), mesh.TasksConsumer)
			if err != nil {
				t.Fatal(err)
			}
			batch, err := cons.FetchNoWait(10)
			if err != nil {
				t.Fatal(err)
			}
			for m := range batch.Messages() {
				w.Handle(t.Context(), m)
				n++
			}
		}
		pending, err := crawler.Pending(t.Context(), e.js, crawlID, parts)
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 && pending == 0 {
			return
		}
		if n == 0 {
			time.Sleep(20 * time.Millisecond) // a nak'd task waits out its delay
		}
	}
	t.Fatal("tasks still queued after 20 rounds")
}

// TestCountersPartitioned: a task's counters go to its own partition's
// counter stream (where a redelivery finds its de-duplication ids), and a
// crawl's counter is their sum.
func TestCountersPartitioned(t *testing.T) {
	// A home page with two items and links to 12 pages, so the pages
	// land in every partition whatever the test server's port.
	mux := http.NewServeMux()
	links := ""
	pages := []string{"/"}
	for i := range 12 {
		links += fmt.Sprintf(`<a href="/p%d">p</a>`, i)
		pages = append(pages, fmt.Sprintf("/p%d", i))
	}
	mux.HandleFunc("/{$}", html(`<div class="item">Tea</div><div class="item">Cup</div>`+links))
	mux.HandleFunc("/{page}", html(`<a href="/">home</a>`))
	s := newSite(t, mux)
	e := newPartitionedEnv(t, s)
	e.seed(t, 0, s.URL+"/")
	e.drain(t, e.worker(crawler.Config{}))

	lay := mesh.NewLayout(parts, mesh.PartitionByURL)
	want := make([]uint64, parts)
	for _, u := range pages {
		want[lay.Of(s.URL+u)]++
	}
	used := 0
	for p := range parts {
		got := e.subjectCount(t, mesh.StatsStreamOf(p), mesh.StatSubjectOf(p, crawlID, mesh.StatOK))
		if got != want[p] {
			t.Errorf("partition %d: %d ok increments in %s, want %d (its pages)", p, got, mesh.StatsStreamOf(p), want[p])
		}
		if got > 0 {
			used++
		}
	}
	if used < 2 {
		t.Errorf("the %d pages counted in %d partition(s): the test does not show a spread", len(pages), used)
	}
	v, err := crawler.ReadCounters(t.Context(), e.js, crawlID, parts, mesh.StatOK, mesh.StatItems)
	if err != nil {
		t.Fatal(err)
	}
	if v[mesh.StatOK] != int64(len(pages)) || v[mesh.StatItems] != 0 || e.items(t) != 2 {
		t.Errorf("summed counters ok=%d items=%d, %d items stored; want %d, 0 (RESULTS counts them), 2",
			v[mesh.StatOK], v[mesh.StatItems], e.items(t), len(pages))
	}
	if n, err := crawler.ReadCounter(t.Context(), e.js, crawlID, mesh.StatOK, 1); err != nil || uint64(n) != want[0] {
		t.Errorf("partition 0 alone: ok=%d, %v; want %d", n, err, want[0])
	}
}

// TestDeadLettersOfTwoPartitions: two tasks with the same stream sequence
// in two partitions are two dead letters, not one and a duplicate.
func TestDeadLettersOfTwoPartitions(t *testing.T) {
	s := shop(t)
	e := newPartitionedEnv(t, s)
	for p := range 2 {
		ack, err := e.js.Publish(t.Context(), mesh.TaskSubjectOf(p, crawlID), []byte("not json"))
		if err != nil {
			t.Fatal(err)
		}
		if ack.Sequence != 1 {
			t.Fatalf("partition %d: sequence %d, want 1 (the test needs equal sequences)", p, ack.Sequence)
		}
	}
	e.drain(t, e.worker(crawler.Config{}))
	if n := e.subjectCount(t, mesh.DeadStream, mesh.DeadSubject(crawlID)); n != 2 {
		t.Errorf("%d dead letters, want 2", n)
	}
	if n, err := crawler.ReadCounter(t.Context(), e.js, crawlID, mesh.StatDead, parts); err != nil || n != 2 {
		t.Errorf("dead = %d, %v; want 2", n, err)
	}
}
