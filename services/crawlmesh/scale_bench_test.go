package main

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/crawlmesh/crawlmesh/pkg/crawlctl"
	"github.com/crawlmesh/crawlmesh/pkg/mesh"
	"github.com/crawlmesh/crawlmesh/pkg/synthsite"
)

// BenchmarkMillionURLs crawls a synthetic site of 1,000,000 pages (10
// links each, so the frontier and the seen-set grow with every page) with
// a master and 4 worker processes on one nats-server process, and samples
// every 10 s: pages/s, the resident memory of every process, the size of
// the seen-set and of the work queue. It reports whether the rate
// degrades as the frontier grows: the pages/s of the last tenth of the
// crawl over that of the first tenth. Run with -benchtime 1x; set
// CRAWLMESH_BENCH_PAGES for a smaller site. With CRAWLMESH_BENCH_PROFILE
// set to a directory, it also takes 30 s CPU profiles of nats-server and
// of one worker early (2 % of the pages done) and late (85 %), to show
// where the time per page goes as the frontier grows.
func BenchmarkMillionURLs(b *testing.B) {
	pages := 1_000_000
	if v, err := strconv.Atoi(os.Getenv("CRAWLMESH_BENCH_PAGES")); err == nil && v > 0 {
		pages = v
	}
	const workers = 4
	for range b.N {
		// Small pages: the point is the frontier's growth, not bytes.
		cfg := synthsite.Config{Pages: pages, PageBytes: 1500}
		site := httptest.NewServer(synthsite.New(cfg))
		defer site.Close()
		profDir := os.Getenv("CRAWLMESH_BENCH_PROFILE")
		var srvArgs []string
		workerHTTP := ""
		var prof *profiler
		if profDir != "" {
			prof = &profiler{dir: profDir, server: freePort(b), worker: freePort(b)}
			srvArgs = []string{"--profile", strconv.Itoa(prof.server)}
			workerHTTP = "127.0.0.1:" + strconv.Itoa(prof.worker)
		}
		ns, url := natsServer(b, true, b.TempDir(), 0, srvArgs...)
		m := start(b, "master", "--nats", url, "--id", "m1", "--http", "", "--log-level", "warn")
		var ws []*proc
		for i := range workers {
			args := []string{"--nats", url, "--id", "w" + strconv.Itoa(i+1), "--http", "",
				"--concurrency", "32", "--log-level", "warn"}
			if i == 0 && prof != nil {
				args = append(args, "--http", workerHTTP, "--pprof")
			}
			ws = append(ws, start(b, "worker", args...))
		}
		bm := openBenchClient(b, url)
		t0 := time.Now()
		id := bm.crawl(synthsite.Spec("million", site.URL, cfg))
		js, crawls := bm.js, bm.crawls
		var err error
		type sample struct {
			at                    time.Duration
			ok                    int64
			rate                  float64
			serverMiB, masterMiB  float64
			workerMiB             float64 // the largest worker
			seenMsgs, seenMiB     float64
			queueMsgs             uint64
			serverCPU, workersCPU float64 // cores used over the interval
		}
		mib := func(p *proc) float64 { return float64(rssKiB(p.PID())) / 1024 }
		cpu := func(ps ...*proc) float64 {
			s := 0.0
			for _, p := range ps {
				s += cpuSeconds(b, p.PID())
			}
			return s
		}
		var samples []sample
		var st crawlctl.Status
		prevOK, prevAt := int64(0), time.Duration(0)
		prevSrvCPU, prevWCPU := cpu(ns), cpu(ws...)
		const every = 10 * time.Second
		deadline := time.Now().Add(60 * time.Minute)
		for time.Now().Before(deadline) {
			time.Sleep(every)
			if st, err = crawlctl.ReadStatus(b.Context(), js, crawls, id); err != nil {
				continue
			}
			at := time.Since(t0)
			sm := sample{at: at, ok: st.PagesOK, serverMiB: mib(ns), masterMiB: mib(m)}
			sm.rate = float64(st.PagesOK-prevOK) / (at - prevAt).Seconds()
			for _, w := range ws {
				sm.workerMiB = max(sm.workerMiB, mib(w))
			}
			if si, err := js.Stream(b.Context(), "KV_"+mesh.SeenBucket); err == nil {
				sm.seenMsgs, sm.seenMiB = float64(si.CachedInfo().State.Msgs), float64(si.CachedInfo().State.Bytes)/(1<<20)
			}
			if si, err := js.Stream(b.Context(), mesh.TasksStream); err == nil {
				sm.queueMsgs = si.CachedInfo().State.Msgs
			}
			srv, wc := cpu(ns), cpu(ws...)
			sm.serverCPU, sm.workersCPU = (srv-prevSrvCPU)/(at-prevAt).Seconds(), (wc-prevWCPU)/(at-prevAt).Seconds()
			prevSrvCPU, prevWCPU = srv, wc
			samples = append(samples, sm)
			prevOK, prevAt = st.PagesOK, at
			if prof != nil {
				switch {
				case !prof.early && st.PagesOK >= int64(pages)/50:
					prof.early = true
					prof.take(b, "early")
				case !prof.late && st.PagesOK >= int64(pages)*85/100:
					prof.late = true
					prof.take(b, "late")
				}
			}
			if st.State != mesh.CrawlRunning {
				break
			}
		}
		el := time.Since(t0)
		if prof != nil {
			prof.wg.Wait()
		}
		var tab strings.Builder
		fmt.Fprintf(&tab, "%6s %9s %8s %10s %10s %10s %10s %9s %9s %9s %9s\n", "t(s)", "pages", "pages/s", "server MiB", "master MiB",
			"worker MiB", "seen keys", "seen MiB", "queue", "srv cores", "wrk cores")
		for _, sm := range samples {
			fmt.Fprintf(&tab, "%6.0f %9d %8.0f %10.0f %10.0f %10.0f %10.0f %9.0f %9d %9.2f %9.2f\n", sm.at.Seconds(), sm.ok, sm.rate,
				sm.serverMiB, sm.masterMiB, sm.workerMiB, sm.seenMsgs, sm.seenMiB, sm.queueMsgs, sm.serverCPU, sm.workersCPU)
		}
		// Straight to stdout: the testing package cuts long benchmark logs.
		fmt.Printf("crawl %s: %+v\n%s", id, st, tab.String())
		if st.State != mesh.CrawlCompleted || st.PagesOK != int64(pages) || st.Items != int64(pages) {
			b.Fatalf("crawl of %d pages did not complete exactly: %+v", pages, st)
		}
		// Rate over the first and the last tenth of the pages, between the
		// samples that bracket them.
		pts := append([]sample{{}}, samples...)
		tenth := func(from, to int64) float64 {
			i := 0
			for i+1 < len(pts) && pts[i+1].ok <= from {
				i++
			}
			j := i
			for j < len(pts)-1 && pts[j].ok < to {
				j++
			}
			if pts[j].at <= pts[i].at {
				return 0
			}
			return float64(pts[j].ok-pts[i].ok) / (pts[j].at - pts[i].at).Seconds()
		}
		first, last := tenth(0, int64(pages)/10), tenth(int64(pages)*9/10, int64(pages))
		peakSrv, peakW, peakM := 0.0, 0.0, 0.0
		for _, sm := range samples {
			peakSrv, peakW, peakM = max(peakSrv, sm.serverMiB), max(peakW, sm.workerMiB), max(peakM, sm.masterMiB)
		}
		b.ReportMetric(float64(pages)/el.Seconds(), "pages/s")
		b.ReportMetric(first, "first-tenth-pages/s")
		b.ReportMetric(last, "last-tenth-pages/s")
		b.ReportMetric(peakSrv, "server-peak-MiB")
		b.ReportMetric(peakW, "worker-peak-MiB")
		b.ReportMetric(peakM, "master-peak-MiB")
		// The seen-set is purged when the crawl completes: its peak is what
		// a crawl of this size costs.
		peakSeen := 0.0
		for _, sm := range samples {
			if sm.seenMsgs > 0 {
				peakSeen = max(peakSeen, sm.seenMiB*(1<<20)/sm.seenMsgs)
			}
		}
		b.ReportMetric(peakSeen, "seen-bytes/url")
	}
}

// profiler takes CPU profiles of nats-server (its --profile port) and of
// a worker (--pprof on its --http address) in the background.
type profiler struct {
	dir            string
	server, worker int
	early, late    bool
	wg             sync.WaitGroup
}

func (p *profiler) take(b *testing.B, phase string) {
	for name, port := range map[string]int{"nats-server": p.server, "worker": p.worker} {
		p.wg.Go(func() {
			url := "http://127.0.0.1:" + strconv.Itoa(port) + "/debug/pprof/profile?seconds=30"
			resp, err := http.Get(url)
			if err != nil {
				b.Errorf("profile %s: %v", name, err)
				return
			}
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				b.Errorf("profile %s: %s", name, resp.Status)
				return
			}
			f, err := os.Create(filepath.Join(p.dir, name+"-"+phase+".pprof"))
			if err != nil {
				b.Error(err)
				return
			}
			defer f.Close()
			if _, err := io.Copy(f, resp.Body); err != nil {
				b.Errorf("profile %s: %v", name, err)
			}
		})
	}
}
