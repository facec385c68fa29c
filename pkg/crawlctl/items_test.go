package crawlctl_test

import (
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/crawlmesh/crawlmesh/pkg/crawlctl"
	"github.com/crawlmesh/crawlmesh/pkg/crawler"
	"github.com/crawlmesh/crawlmesh/pkg/mesh"
)

// TestItemsCountedByResults: a running crawl's item count is what RESULTS
// holds, a repeated item counted once; when the crawl completes the total
// goes into its counter, so it outlives the items themselves.
func TestItemsCountedByResults(t *testing.T) {
	e := newEnv(t, `name: t
start_urls: ["http://127.0.0.1:1/"]
`)
	e.run(t)

	id, err := e.ctl.Start(t.Context(), "t")
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range []int{0, 1, 2, 1} { // item 1 twice: a redelivered task's
		if _, err := e.js.Publish(t.Context(), mesh.ResultSubject(id), []byte(`{}`),
			jetstream.WithMsgID(mesh.ItemID(id, "http://127.0.0.1:1/", i))); err != nil {
			t.Fatal(err)
		}
	}
	status := func() crawlctl.Status {
		st, err := crawlctl.ReadStatus(t.Context(), e.js, e.crawls, id)
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	if st := status(); st.State != mesh.CrawlRunning || st.Items != 3 {
		t.Fatalf("running: %s with %d items, want running with 3", st.State, st.Items)
	}
	e.done(t, id)
	eventually(t, 5*time.Second, "the crawl completes", func() bool { return status().State == mesh.CrawlCompleted })
	// The master records the total just after it marks the crawl completed.
	eventually(t, 5*time.Second, "the items counter holds the total, 3", func() bool {
		n, err := crawler.ReadCounter(t.Context(), e.js, id, mesh.StatItems, 1)
		if err != nil {
			t.Fatal(err)
		}
		return n == 3
	})
	s, err := e.js.Stream(t.Context(), mesh.ResultsStream)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Purge(t.Context(), jetstream.WithPurgeSubject(mesh.ResultSubject(id))); err != nil {
		t.Fatal(err)
	}
	if st := status(); st.Items != 3 {
		t.Errorf("after its items aged out of RESULTS: %d items, want 3", st.Items)
	}
}
