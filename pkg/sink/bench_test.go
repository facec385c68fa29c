package sink_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/crawlmesh/crawlmesh/pkg/mesh"
	"github.com/crawlmesh/crawlmesh/pkg/pgtest"
	"github.com/crawlmesh/crawlmesh/pkg/sink"
	"github.com/crawlmesh/crawlmesh/streams"
	"github.com/crawlmesh/crawlmesh/streams/streamstest"
)

// BenchmarkPostgres measures items/s from RESULTS into a PostgreSQL table
// by batch size: 5,000 items stored first, then one sink delivers them
// all (a fresh table and consumer per run). Reported as items/s.
func BenchmarkPostgres(b *testing.B) {
	pg := pgtest.Start(b)
	_, js := streamstest.Start(b, streams.Options{})
	sinks, crawls := streamstest.Bucket(b, js, mesh.SinksBucket), streamstest.Bucket(b, js, mesh.CrawlsBucket)
	const n = 5000
	cr, _ := json.Marshal(mesh.Crawl{ID: "bench-1", Spider: "bench", State: mesh.CrawlRunning, CreatedAt: time.Now().UTC()})
	if _, err := crawls.Put(context.Background(), "bench-1", cr); err != nil {
		b.Fatal(err)
	}
	for i := range n {
		u := fmt.Sprintf("http://127.0.0.1:1/p/%d.html", i)
		body, _ := json.Marshal(mesh.Item{URL: u, Spider: "bench", Crawl: "bench-1", Depth: 2, FetchedAt: time.Now().UTC(),
			Data: map[string]any{"title": fmt.Sprintf("A product %d with a title of usual length", i), "price": "12.99",
				"tags": []string{"a", "b", "c"}, "description": "Some text of a few dozen words as a product page has it, repeated. Some text of a few dozen words."}})
		if _, err := js.PublishAsync(mesh.ResultSubject("bench-1"), body, jetstream.WithMsgID(mesh.ItemID("bench-1", u, 0))); err != nil {
			b.Fatal(err)
		}
	}
	<-js.PublishAsyncComplete()
	run := 0
	for _, size := range []int{50, 200, 500, 2000} {
		b.Run(fmt.Sprintf("batch=%d", size), func(b *testing.B) {
			var total time.Duration
			for range b.N {
				run++
				name, table := fmt.Sprintf("b%d", run), fmt.Sprintf("bench_%d", run)
				mg, err := sink.New(sink.Config{JS: js, Sinks: sinks, Crawls: crawls, Node: "m1", Log: slog.New(slog.DiscardHandler),
					Lookup: func(string) (string, bool) { return pgtest.Password, true }})
				if err != nil {
					b.Fatal(err)
				}
				s := sink.Sink{Name: name, Type: sink.TypePostgres, BatchSize: size, BatchWait: sink.Duration(50 * time.Millisecond),
					Postgres: &sink.Postgres{URL: pg.URL("${env:PGPASS}"), Table: table}, CreatedAt: time.Now().UTC()}
				def, _ := json.Marshal(s)
				ctx, cancel := context.WithCancel(context.Background())
				done := make(chan struct{})
				t0 := time.Now()
				go func() { defer close(done); _ = mg.Run(ctx) }()
				if _, err := sinks.Put(ctx, name, def); err != nil {
					b.Fatal(err)
				}
				deadline := time.Now().Add(2 * time.Minute)
				for count(b, pg, table) < n {
					if time.Now().After(deadline) {
						b.Fatalf("batch %d: not all %d rows within 2m", size, n)
					}
					time.Sleep(20 * time.Millisecond)
				}
				total += time.Since(t0)
				cancel()
				<-done
				_ = sinks.Purge(context.Background(), name)
			}
			b.ReportMetric(float64(n*b.N)/total.Seconds(), "items/s")
		})
	}
}
