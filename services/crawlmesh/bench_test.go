package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/crawlmesh/crawlmesh/pkg/crawlctl"
	"github.com/crawlmesh/crawlmesh/pkg/crawler"
	"github.com/crawlmesh/crawlmesh/pkg/heartbeat"
	"github.com/crawlmesh/crawlmesh/pkg/master"
	"github.com/crawlmesh/crawlmesh/pkg/mesh"
	"github.com/crawlmesh/crawlmesh/pkg/spec"
	"github.com/crawlmesh/crawlmesh/pkg/synthsite"
	"github.com/crawlmesh/crawlmesh/streams"
)

// BenchmarkHeartbeats runs nodes simulated heartbeaters (in this process)
// against a nats-server process and one master process for a fixed window,
// and reports what the master and the server cost. Run with -benchtime 1x:
// the window, not b.N, sets the length.
func BenchmarkHeartbeats(b *testing.B) {
	for _, tc := range []struct {
		nodes    int
		interval time.Duration
	}{{1000, time.Second}, {1000, 250 * time.Millisecond}} {
		b.Run(fmt.Sprintf("nodes=%d/interval=%v", tc.nodes, tc.interval), func(b *testing.B) {
			for range b.N {
				benchHeartbeats(b, tc.nodes, tc.interval, 10*time.Second)
			}
		})
	}
}

func benchHeartbeats(b *testing.B, nodes int, interval, window time.Duration) {
	ns, url := natsServer(b, true, b.TempDir(), 0)
	m := start(b, "master", "--nats", url, "--id", "m1", "--http", "", "--heartbeat-ttl", "3s", "--log-level", "warn")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	var conns []*nats.Conn
	for range 8 {
		nc, err := nats.Connect(url)
		if err != nil {
			b.Fatal(err)
		}
		defer nc.Close()
		conns = append(conns, nc)
	}
	var kv jetstream.KeyValue
	deadline := time.Now().Add(10 * time.Second)
	for {
		js, _ := jetstream.New(conns[0])
		var err error
		if kv, err = js.KeyValue(ctx, mesh.NodesBucket); err == nil {
			break
		}
		if time.Now().After(deadline) {
			b.Fatal("bucket nodes not created by the master")
		}
		time.Sleep(50 * time.Millisecond)
	}
	var wg sync.WaitGroup
	for i := range nodes {
		js, _ := jetstream.New(conns[i%len(conns)])
		nkv, err := js.KeyValue(ctx, mesh.NodesBucket)
		if err != nil {
			b.Fatal(err)
		}
		bt, err := heartbeat.New(nkv, "sim-"+strconv.Itoa(i), mesh.RoleWorker,
			heartbeat.WithInterval(interval), heartbeat.WithTTL(3*time.Second))
		if err != nil {
			b.Fatal(err)
		}
		if err := bt.Claim(ctx); err != nil {
			b.Fatal(err)
		}
		wg.Go(func() { _ = bt.Run(ctx) })
	}
	defer wg.Wait()
	defer cancel()

	seq := func() uint64 {
		st, err := kv.Status(ctx)
		if err != nil {
			b.Fatal(err)
		}
		return st.(*jetstream.KeyValueBucketStatus).StreamInfo().State.LastSeq
	}
	time.Sleep(2 * interval) // let every node settle into its rhythm
	seq0, cpuM0, cpuS0, t0 := seq(), cpuSeconds(b, m.PID()), cpuSeconds(b, ns.PID()), time.Now()
	var ages []float64
	var online []int
	for time.Since(t0) < window {
		time.Sleep(250 * time.Millisecond)
		msg, err := conns[0].Request(mesh.ViewSubject, nil, 2*time.Second)
		if err != nil {
			continue
		}
		var v master.ViewReply
		if json.Unmarshal(msg.Data, &v) != nil {
			continue
		}
		n := 0
		for _, node := range v.Nodes {
			if node.Online && strings.HasPrefix(node.ID, "sim-") {
				n++
				ages = append(ages, node.AgeSeconds)
			}
		}
		online = append(online, n)
	}
	el := time.Since(t0).Seconds()
	puts := float64(seq()-seq0) / el
	cpuM := (cpuSeconds(b, m.PID()) - cpuM0) / el
	cpuS := (cpuSeconds(b, ns.PID()) - cpuS0) / el
	slices.Sort(ages)
	slices.Sort(online)
	p99 := 0.0
	if len(ages) > 0 {
		p99 = ages[len(ages)*99/100]
	}
	b.ReportMetric(puts, "kv-puts/s")
	b.ReportMetric(cpuM*100, "master-cpu-%")
	b.ReportMetric(cpuS*100, "server-cpu-%")
	b.ReportMetric(p99, "age-p99-s")
	b.ReportMetric(float64(online[0]), "min-online")
	b.ReportMetric(float64(rssKiB(m.PID()))/1024, "master-rss-MiB")
}

// cpuSeconds reads utime+stime of pid from /proc (Linux).
func cpuSeconds(tb testing.TB, pid int) float64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		tb.Fatalf("cpu of %d: %v", pid, err)
	}
	// Fields after the ")" that ends the command name: utime is field 14, stime 15.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / 100 // USER_HZ is 100 on Linux
}

// rssKiB reads VmRSS of pid.
func rssKiB(pid int) int { return int(procRSS(strconv.Itoa(pid)) >> 10) }

// BenchmarkDedupMillion admits 1,000,000 distinct URLs into one crawl's
// seen-set (plus 10% repeats) against a nats-server process, the way
// workers do, and reports the cost per URL and what the server holds
// afterwards. Run with -benchtime 1x.
func BenchmarkDedupMillion(b *testing.B) {
	const total, batch = 1_000_000, 1000
	for range b.N {
		ns, url := natsServer(b, true, b.TempDir(), 0)
		nc, err := nats.Connect(url)
		if err != nil {
			b.Fatal(err)
		}
		defer nc.Close()
		js, _ := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(4096))
		defs, _ := streams.Load()
		if err := streams.Ensure(b.Context(), js, defs, streams.Options{}); err != nil {
			b.Fatal(err)
		}
		seen, _ := js.KeyValue(b.Context(), mesh.SeenBucket)
		pub := crawler.NewPublisher(js, seen)
		rss0 := rssKiB(ns.PID())
		t0 := time.Now()
		admitted := 0
		for i := 0; i < total; i += batch {
			cands := make([]mesh.Task, 0, batch+batch/10)
			for j := i; j < i+batch; j++ {
				u := "http://site.example/p/" + strconv.Itoa(j) + ".html"
				cands = append(cands, mesh.Task{ID: mesh.URLHash(u), URL: u})
			}
			for j := range batch / 10 { // repeats of earlier URLs
				u := "http://site.example/p/" + strconv.Itoa((i+j*7)/2) + ".html"
				cands = append(cands, mesh.Task{ID: mesh.URLHash(u), URL: u})
			}
			adm, err := pub.Admit(b.Context(), "bench", 0, "parent", false, cands)
			if err != nil {
				b.Fatal(err)
			}
			admitted += len(adm.Tasks)
		}
		el := time.Since(t0)
		if admitted != total {
			b.Fatalf("admitted %d, want %d", admitted, total)
		}
		st, _ := seen.Status(b.Context())
		bytes := st.(*jetstream.KeyValueBucketStatus).StreamInfo().State.Bytes
		b.ReportMetric(float64(el.Nanoseconds())/float64(total+total/10), "ns/url")
		b.ReportMetric(float64(total+total/10)/el.Seconds(), "urls/s")
		b.ReportMetric(float64(bytes)/float64(total), "store-bytes/url")
		b.ReportMetric(float64(rssKiB(ns.PID())-rss0)/1024, "server-rss-growth-MiB")
	}
}

// BenchmarkWorkerCrawl10k crawls a 10,000-page synthetic site with one
// worker process (concurrency 32) and reports its peak and idle resident
// memory and the crawl rate. Run with -benchtime 1x.
func BenchmarkWorkerCrawl10k(b *testing.B) {
	for range b.N {
		cfg := synthsite.Config{Pages: 10000}
		site := httptest.NewServer(synthsite.New(cfg))
		defer site.Close()
		_, url := natsServer(b, true, b.TempDir(), 0)
		start(b, "master", "--nats", url, "--id", "m1", "--http", "", "--log-level", "warn")
		w := start(b, "worker", "--nats", url, "--id", "w1", "--http", "", "--concurrency", "32", "--log-level", "warn")
		bm := openBenchClient(b, url)
		time.Sleep(2 * time.Second) // let the worker settle before reading its idle size
		idle := rssKiB(w.PID())
		t0 := time.Now()
		id := bm.crawl(synthsite.Spec("synth", site.URL, cfg))
		js, crawls := bm.js, bm.crawls
		var err error
		peak := 0
		var st crawlctl.Status
		for deadline := time.Now().Add(10 * time.Minute); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
			peak = max(peak, rssKiB(w.PID()))
			if st, err = crawlctl.ReadStatus(b.Context(), js, crawls, id); err == nil && st.PagesOK >= int64(cfg.Pages) {
				break
			}
		}
		el := time.Since(t0)
		if st.PagesOK != int64(cfg.Pages) || st.Items != int64(cfg.Pages) {
			b.Fatalf("crawl of %d pages: %+v", cfg.Pages, st)
		}
		b.ReportMetric(float64(idle)/1024, "idle-rss-MiB")
		b.ReportMetric(float64(peak)/1024, "peak-rss-MiB")
		b.ReportMetric(float64(st.PagesOK)/el.Seconds(), "pages/s")
	}
}

// benchClient is a client of a benchmark's mesh.
type benchClient struct {
	b       *testing.B
	nc      *nats.Conn
	js      jetstream.JetStream
	spiders jetstream.KeyValue
	crawls  jetstream.KeyValue
}

// openBenchClient connects to url and waits for a master to create the
// buckets.
func openBenchClient(b *testing.B, url string) *benchClient {
	nc, err := nats.Connect(url)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(nc.Close)
	bm := &benchClient{b: b, nc: nc}
	bm.js, _ = jetstream.New(nc)
	waitFor(b, 15*time.Second, "buckets", func() bool {
		bm.spiders, err = bm.js.KeyValue(b.Context(), mesh.SpidersBucket)
		if err != nil {
			return false
		}
		bm.crawls, err = bm.js.KeyValue(b.Context(), mesh.CrawlsBucket)
		return err == nil
	})
	return bm
}

// crawl stores the spider of specYAML and starts a crawl of it.
func (bm *benchClient) crawl(specYAML string) string {
	s, err := spec.Parse([]byte(specYAML))
	if err != nil {
		bm.b.Fatal(err)
	}
	raw, _ := json.Marshal(s)
	if _, err := bm.spiders.Put(bm.b.Context(), s.Name, raw); err != nil {
		bm.b.Fatal(err)
	}
	id, err := crawlctl.Call(bm.b.Context(), bm.nc, mesh.APICrawlStart, crawlctl.APIRequest{Spider: s.Name}, 10*time.Second)
	if err != nil {
		bm.b.Fatal(err)
	}
	return id
}
