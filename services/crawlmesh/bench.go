package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/gocolly/colly/v2"
	"github.com/spf13/cobra"

	"github.com/crawlmesh/crawlmesh/pkg/crawlctl"
	"github.com/crawlmesh/crawlmesh/pkg/mesh"
	"github.com/crawlmesh/crawlmesh/pkg/metrics"
	"github.com/crawlmesh/crawlmesh/pkg/natsconn"
	"github.com/crawlmesh/crawlmesh/pkg/nodeconfig"
	"github.com/crawlmesh/crawlmesh/pkg/spec"
	"github.com/crawlmesh/crawlmesh/pkg/synthsite"
)

// benchResult is one row of `crawlmesh bench`.
type benchResult struct {
	Name     string  `json:"name"`
	Pages    int64   `json:"pages"`
	Items    int64   `json:"items"`
	Seconds  float64 `json:"seconds"`
	PagesPS  float64 `json:"pages_per_second"`
	ItemsPS  float64 `json:"items_per_second"`
	PeakRSS  int64   `json:"peak_rss_bytes"`
	RatioVsC float64 `json:"ratio_vs_colly"`
}

type benchOpts struct {
	pages, par int
	latency    time.Duration
	workers    string
}

func newBenchCmd(c *cli, f *clientFlags) *cobra.Command {
	var o benchOpts
	cmd := &cobra.Command{
		Use:         "bench",
		Short:       "crawl a synthetic loopback site with plain colly and with the mesh, side by side",
		Args:        nArgs(0, 0, "bench"),
		Annotations: map[string]string{noEnv: "yes"},
		RunE:        func(cmd *cobra.Command, _ []string) error { return runBench(cmd.Context(), c, f, &o) },
	}
	fl := cmd.Flags()
	fl.IntVar(&o.pages, "pages", 20000, "pages of the synthetic site")
	fl.DurationVar(&o.latency, "latency", 0, "added latency of every page")
	fl.IntVar(&o.par, "parallelism", 32, "requests in flight: colly's LimitRule parallelism, and the mesh's total concurrency split over its workers")
	fl.StringVar(&o.workers, "workers", "1,"+strconv.Itoa(runtime.NumCPU()), "mesh sizes to run, comma-separated")
	return cmd
}

func runBench(ctx context.Context, c *cli, f *clientFlags, o *benchOpts) error {
	pages, latency, par, workerList := &o.pages, &o.latency, &o.par, &o.workers
	output := &f.output
	if *pages < 10 || *par < 1 || (*output != "table" && *output != "wide" && *output != "json") {
		return usagef("want --pages >= 10, --parallelism >= 1, -o table|wide|json")
	}
	var sizes []int
	for _, f := range strings.Split(*workerList, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 || n > *par {
			return usagef("--workers %q: want counts between 1 and --parallelism", *workerList)
		}
		sizes = append(sizes, n)
	}
	cfg := synthsite.Config{Pages: *pages, Latency: *latency}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: synthsite.New(cfg), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()
	base := "http://" + ln.Addr().String()
	fmt.Fprintf(c.stderr, "bench: synthetic site of %d pages at %s, latency %v, parallelism %d\n", *pages, base, *latency, *par)

	var rows []benchResult
	row, err := benchColly(ctx, base, *par)
	if err != nil {
		return err
	}
	rows = append(rows, row)
	fmt.Fprintf(c.stderr, "bench: plain colly done: %.0f pages/s\n", row.PagesPS)
	for _, n := range sizes {
		row, err := benchMesh(ctx, base, cfg, n, *par)
		if err != nil {
			return err
		}
		if rows[0].PagesPS > 0 {
			row.RatioVsC = row.PagesPS / rows[0].PagesPS
		}
		rows = append(rows, row)
		fmt.Fprintf(c.stderr, "bench: mesh with %d worker(s) done: %.0f pages/s\n", n, row.PagesPS)
	}
	rows[0].RatioVsC = 1
	if *output == "json" {
		return writeJSON(c.stdout, rows)
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "RUN\tPAGES\tITEMS\tSECONDS\tPAGES/S\tITEMS/S\tPEAK RSS MiB\tMESH/COLLY\t")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%.2f\t%.0f\t%.0f\t%.0f\t%.2f\t\n", r.Name, r.Pages, r.Items, r.Seconds, r.PagesPS, r.ItemsPS,
			float64(r.PeakRSS)/(1<<20), r.RatioVsC)
	}
	_ = tw.Flush()
	fmt.Fprintln(c.stdout, "(one process: the mesh rows include the embedded nats-server; pages are unique pages fetched)")
	return nil
}

// benchColly crawls the site with plain colly, as its README suggests.
func benchColly(ctx context.Context, base string, par int) (benchResult, error) {
	var pages, items atomic.Int64
	seen := sync.Map{}
	col := colly.NewCollector(colly.Async(true), colly.StdlibContext(ctx))
	if err := col.Limit(&colly.LimitRule{DomainGlob: "*", Parallelism: par}); err != nil {
		return benchResult{}, err
	}
	col.OnHTML("a.l[href]", func(e *colly.HTMLElement) { _ = e.Request.Visit(e.Attr("href")) })
	col.OnHTML("div.item", func(*colly.HTMLElement) { items.Add(1) })
	col.OnResponse(func(r *colly.Response) {
		if _, dup := seen.LoadOrStore(r.Request.URL.String(), true); !dup {
			pages.Add(1)
		}
	})
	stop := sampleRSS()
	t0 := time.Now()
	if err := col.Visit(base + synthsite.StartPath); err != nil {
		return benchResult{}, err
	}
	col.Wait()
	el := time.Since(t0).Seconds()
	return benchResult{Name: "colly", Pages: pages.Load(), Items: items.Load(), Seconds: el,
		PagesPS: float64(pages.Load()) / el, ItemsPS: float64(items.Load()) / el, PeakRSS: stop()}, nil
}

// benchMesh crawls the site with an embedded mesh of n workers sharing
// par slots.
func benchMesh(ctx context.Context, base string, cfg synthsite.Config, n, par int) (benchResult, error) {
	dir, err := os.MkdirTemp("", "crawlmesh-bench-")
	if err != nil {
		return benchResult{}, err
	}
	defer os.RemoveAll(dir)
	u := upConfig{workers: n, concurrency: max(par/n, 1), data: dir, natsPort: -1,
		node: nodeconfig.Node{HeartbeatInterval: time.Second, HeartbeatTTL: 3 * time.Second, LogLevel: "error", LogFormat: "text"}}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	mctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := sampleRSS()
	m, err := launchMesh(mctx, cancel, u, log, metrics.NewRegistry())
	if err != nil {
		return benchResult{}, err
	}
	defer func() { cancel(); _ = m.wait() }()
	nc, js, err := natsconn.Dial(ctx, natsconn.Config{URL: m.url, Name: "crawlmesh-bench"}, nil, natsconn.Hooks{})
	if err != nil {
		return benchResult{}, err
	}
	defer nc.Close()
	s, err := spec.Parse([]byte(synthsite.Spec("synth", base, cfg)))
	if err != nil {
		return benchResult{}, err
	}
	b, _ := json.Marshal(s)
	spiders, err := js.KeyValue(ctx, mesh.SpidersBucket)
	if err != nil {
		return benchResult{}, err
	}
	if _, err := spiders.Put(ctx, s.Name, b); err != nil {
		return benchResult{}, err
	}
	crawls, err := js.KeyValue(ctx, mesh.CrawlsBucket)
	if err != nil {
		return benchResult{}, err
	}
	t0 := time.Now()
	id, err := crawlctl.Call(ctx, nc, mesh.APICrawlStart, crawlctl.APIRequest{Spider: s.Name}, 10*time.Second)
	if err != nil {
		return benchResult{}, err
	}
	var st crawlctl.Status
	for deadline := time.Now().Add(30 * time.Minute); ; {
		if st, err = crawlctl.ReadStatus(ctx, js, crawls, id); err != nil {
			return benchResult{}, err
		}
		if st.PagesOK+st.PagesFailed+st.Dead >= int64(cfg.Pages) || st.State != mesh.CrawlRunning {
			break
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return benchResult{}, fmt.Errorf("mesh crawl of %d pages did not finish: %+v", cfg.Pages, st)
		}
		time.Sleep(20 * time.Millisecond)
	}
	el := time.Since(t0).Seconds()
	return benchResult{Name: fmt.Sprintf("mesh %d worker(s)", n), Pages: st.PagesOK, Items: st.Items, Seconds: el,
		PagesPS: float64(st.PagesOK) / el, ItemsPS: float64(st.Items) / el, PeakRSS: stop()}, nil
}

// sampleRSS samples this process's resident set every 100ms until the
// returned function is called, which returns the peak in bytes.
func sampleRSS() func() int64 {
	var peak atomic.Int64
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			if r := procRSS("self"); r > peak.Load() {
				peak.Store(r)
			}
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	})
	return func() int64 { close(done); wg.Wait(); return peak.Load() }
}

// procRSS reads VmRSS of a process ("self" or a pid) from /proc (Linux);
// 0 elsewhere.
func procRSS(pid string) int64 {
	b, err := os.ReadFile("/proc/" + pid + "/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return n << 10
		}
	}
	return 0
}
