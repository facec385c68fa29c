package crawler_test

import (
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/crawlmesh/crawlmesh/pkg/crawler"
	"github.com/crawlmesh/crawlmesh/pkg/mesh"
	"github.com/crawlmesh/crawlmesh/pkg/politeness"
	"github.com/crawlmesh/crawlmesh/streams/streamstest"
)

// While NATS restarts, its JetStream can deliver tasks yet not answer for
// the host state. The task then goes back after the retry back-off, not
// at once: at once, every worker took it back and failed the same way
// until it was dead-lettered "delivered 6 times" within a second, and the
// pages it leads to were never crawled (found by review: 66 tasks lost
// to one restart).
func TestHandleHostStateUnreadable(t *testing.T) {
	e := newEnv(t)
	s := shop(t)
	// robots.txt is taken as read (as it is mid-crawl, from the shared
	// cache): the first thing that needs the host state is the page's turn.
	e.putCrawl(t, mesh.CrawlRunning, s.spec(t, shopRules+"politeness: {robots_txt: false}\n"))
	seeds := e.seed(t, 0, s.URL+"/")
	gate := politeness.New(streamstest.Bucket(t, e.js, mesh.HostsBucket), streamstest.Bucket(t, e.js, mesh.ThrottleBucket), "w1", 10*time.Second, nil)
	if err := e.js.DeleteKeyValue(t.Context(), mesh.HostsBucket); err != nil {
		t.Fatal(err)
	}
	w := e.worker(crawler.Config{Node: "w1", Gate: gate, Backoff: 2 * time.Second})
	w.Handle(t.Context(), e.next(t, seeds[0].ID))

	cons, err := e.js.Consumer(t.Context(), mesh.TasksStream, mesh.TasksConsumer)
	if err != nil {
		t.Fatal(err)
	}
	batch, err := cons.Fetch(1, jetstream.FetchMaxWait(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	for m := range batch.Messages() {
		md, _ := m.Metadata()
		t.Fatalf("task back within a second (delivery %d): want the 2 s back-off first", md.NumDelivered)
	}
	m := e.next(t, seeds[0].ID)
	if md, err := m.Metadata(); err != nil || md.NumDelivered != 2 {
		t.Errorf("metadata %+v, %v: want the second delivery", md, err)
	}
	if n := s.total(); n != 0 {
		t.Errorf("%d requests to the site without a politeness slot, want 0", n)
	}
	if n := e.subjectCount(t, mesh.DeadStream, mesh.DeadSubject(crawlID)); n != 0 {
		t.Errorf("%d dead letters, want 0", n)
	}
}
