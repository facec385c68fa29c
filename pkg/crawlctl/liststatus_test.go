package crawlctl_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/crawlmesh/crawlmesh/pkg/crawlctl"
	"github.com/crawlmesh/crawlmesh/pkg/crawler"
	"github.com/crawlmesh/crawlmesh/pkg/mesh"
)

// TestStatusCache: a listing read again (the console polls it) reads an
// ended crawl's status once, and still sees every change of a record, a
// crawl that ended just now, and a crawl deleted.
func TestStatusCache(t *testing.T) {
	e := newEnv(t, "name: t\nstart_urls: [\"http://127.0.0.1:1/\"]\n")
	end := func(id string, ago time.Duration) {
		t.Helper()
		cr, rev, err := crawler.ReadCrawl(t.Context(), e.crawls, id)
		if err != nil {
			t.Fatal(err)
		}
		at := time.Now().Add(-ago).UTC()
		cr.State, cr.FinishedAt, cr.CreatedAt = mesh.CrawlCompleted, &at, at.Add(-time.Minute)
		b, _ := json.Marshal(cr)
		if _, err := e.crawls.Update(t.Context(), id, b, rev); err != nil {
			t.Fatal(err)
		}
	}
	var ids []string
	for range 20 {
		id, err := e.ctl.Start(t.Context(), "t")
		if err != nil {
			t.Fatal(err)
		}
		end(id, time.Hour)
		ids = append(ids, id)
	}
	var cache crawlctl.StatusCache
	list := func() (map[string]crawlctl.Status, uint64) {
		t.Helper()
		before := e.nc.Stats().OutMsgs
		sts, err := cache.List(t.Context(), e.js, e.crawls)
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]crawlctl.Status{}
		for _, st := range sts {
			out[st.ID] = st
		}
		return out, e.nc.Stats().OutMsgs - before
	}
	first, cold := list()
	second, warm := list()
	if len(first) != len(ids) || len(second) != len(ids) {
		t.Fatalf("listed %d then %d crawls, want %d", len(first), len(second), len(ids))
	}
	for id, st := range first {
		if a, b := jsonOf(t, second[id]), jsonOf(t, st); a != b {
			t.Errorf("crawl %s: %s from the cache, %s read", id, a, b)
		}
	}
	// A status read is a dozen requests; a cached one is its record's.
	if warm*4 > cold {
		t.Errorf("the second listing sent %d messages, the first %d: ended crawls read again", warm, cold)
	}

	// An ended crawl's record changes: read again.
	cr, rev, err := crawler.ReadCrawl(t.Context(), e.crawls, ids[0])
	if err != nil {
		t.Fatal(err)
	}
	cr.State, cr.Error = mesh.CrawlFailed, "set by the test"
	b, _ := json.Marshal(cr)
	if _, err := e.crawls.Update(t.Context(), ids[0], b, rev); err != nil {
		t.Fatal(err)
	}
	// One that ended just now is not kept: its counters may still move.
	end(ids[1], 0)
	list()
	pub := crawler.NewPublisher(e.js, nil)
	for _, id := range ids[1:2] {
		f, err := pub.Incr(0, id, mesh.StatOK, 7, "test."+id)
		if err != nil {
			t.Fatal(err)
		}
		if err := crawler.Wait(t.Context(), []jetstream.PubAckFuture{f}); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.crawls.Delete(t.Context(), ids[19]); err != nil {
		t.Fatal(err)
	}
	third, _ := list()
	if st := third[ids[0]]; st.State != mesh.CrawlFailed || st.Error != "set by the test" {
		t.Errorf("crawl whose record changed: %q %q, want failed with the new error", st.State, st.Error)
	}
	if st := third[ids[1]]; st.PagesOK != 7 {
		t.Errorf("crawl ended just now: %d pages, want the 7 counted after its last listing", st.PagesOK)
	}
	if _, ok := third[ids[19]]; ok || len(third) != len(ids)-1 {
		t.Errorf("after a delete: %d crawls listed (deleted one listed: %v), want %d", len(third), ok, len(ids)-1)
	}
}

func jsonOf(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
