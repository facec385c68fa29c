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
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/gocolly/colly/v2"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"

	"github.com/crawlmesh/crawlmesh/pkg/crawlctl"
	"github.com/crawlmesh/crawlmesh/pkg/mesh"
	"github.com/crawlmesh/crawlmesh/pkg/metrics"
	"github.com/crawlmesh/crawlmesh/pkg/natsconn"
	"github.com/crawlmesh/crawlmesh/pkg/nodeconfig"
	"github.com/crawlmesh/crawlmesh/pkg/spec"
	"github.com/crawlmesh/crawlmesh/pkg/synthsite"
	"github.com/crawlmesh/crawlmesh/streams"
)

// benchResult is one row of `crawlmesh bench`.
type benchResult struct {
	Name    string  `json:"name"`
	Pages   int64   `json:"pages"`
	Items   int64   `json:"items"`
	Seconds float64 `json:"seconds"`
	PagesPS float64 `json:"pages_per_second"`
	ItemsPS float64 `json:"items_per_second"`
	// PeakRSS is the process's peak resident set (colly, in-process), or
	// the sum of the peaks of the mesh's processes.
	PeakRSS  int64   `json:"peak_rss_bytes"`
	RatioVsC float64 `json:"ratio_vs_colly"`
	// The nats-server process of a mesh row: its peak resident set, that
	// per page fetched, and its CPU time per page in milliseconds.
	ServerRSS          int64   `json:"server_peak_rss_bytes,omitempty"`
	ServerBytesPerPage float64 `json:"server_peak_rss_bytes_per_page,omitempty"`
	ServerCPUPerPage   float64 `json:"server_cpu_ms_per_page,omitempty"`
	// ServerRSSEach is every nats-server's peak (with --servers > 1,
	// ServerRSS is the largest and ServerCPUPerPage their sum).
	ServerRSSEach []int64 `json:"server_peak_rss_bytes_each,omitempty"`
	// Streams says where each stream of a mesh row stood at the crawl's
	// end and what was written to it: what explains a server's memory.
	Streams []benchStream `json:"streams,omitempty"`
}

// benchStream is one stream (or bucket) of a mesh row at the crawl's end.
type benchStream struct {
	Name    string `json:"name"`
	Server  string `json:"server"`
	Written uint64 `json:"messages_written"`
	Bytes   uint64 `json:"bytes_stored"`
}

// goMemLimitRE is a GOMEMLIMIT value as the Go runtime reads it; the
// runtime refuses to start on any other.
var goMemLimitRE = regexp.MustCompile(`^[0-9]+(B|KiB|MiB|GiB|TiB)?$`)

type benchOpts struct {
	pages, par int
	latency    time.Duration
	workers    string
	inProcess  bool
	noColly    bool
	partitions int
	profPort   int
	natsGOGC   int
	natsMemLim string
	servers    int
	replicas   int
	jsPlaces   bool
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
	fl.BoolVar(&o.inProcess, "in-process", false, "also run each mesh size in this process on an embedded server (no sockets between the parts; an extra row, not a deployment)")
	fl.IntVar(&o.partitions, "partitions", 1, "partitions of the frontier and the seen-set (the master's --partitions); the synthetic site is one host, so with more than one its spec says partition_by: url")
	fl.IntVar(&o.natsGOGC, "nats-gogc", 0, "GOGC of the nats-server process (0: Go's default, 100); lower trades server CPU for memory")
	fl.StringVar(&o.natsMemLim, "nats-memlimit", "", "GOMEMLIMIT of each nats-server process, as deploy/k8s sets it from the container's memory limit (say 100MiB; empty: none); the server's GC works harder near it")
	fl.IntVar(&o.servers, "servers", 1, "nats-server processes: more than 1 form a cluster on loopback")
	fl.IntVar(&o.replicas, "replicas", 0, "replicas of every stream and bucket (the master's --replicas; 0: 3 on a cluster of 3 or more)")
	fl.BoolVar(&o.jsPlaces, "no-partition-tags", false, "with --servers and --partitions: let JetStream place the partitions instead of tagging each group of --replicas servers and giving the master --partition-tags")
	fl.BoolVar(&o.noColly, "no-colly", false, "skip plain colly (for mesh-only scale runs)")
	fl.IntVar(&o.profPort, "nats-prof-port", 0, "serve the nats-server process's pprof on this loopback port (0: off)")
	return cmd
}

func runBench(ctx context.Context, c *cli, f *clientFlags, o *benchOpts) error {
	pages, latency, par, workerList := &o.pages, &o.latency, &o.par, &o.workers
	output := &f.output
	if o.servers < 1 || o.servers > 5 || o.replicas < 0 || o.replicas > o.servers {
		return usagef("want --servers 1-5 and --replicas 0-%d (at most --servers)", o.servers)
	}
	if o.natsMemLim != "" && !goMemLimitRE.MatchString(o.natsMemLim) {
		return usagef("--nats-memlimit %q is not a size as Go's GOMEMLIMIT reads it (say 100MiB)", o.natsMemLim)
	}
	if o.partitions < 1 || o.partitions > 64 {
		return usagef("--partitions %d: want 1-64", o.partitions)
	}
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
	row := benchResult{Name: "colly (skipped)"}
	if !o.noColly {
		if row, err = benchColly(ctx, base, *par); err != nil {
			return err
		}
		fmt.Fprintf(c.stderr, "bench: plain colly done: %.0f pages/s\n", row.PagesPS)
	}
	rows = append(rows, row)
	add := func(row benchResult, err error) error {
		if err != nil {
			return err
		}
		if rows[0].PagesPS > 0 {
			row.RatioVsC = row.PagesPS / rows[0].PagesPS
		}
		rows = append(rows, row)
		fmt.Fprintf(c.stderr, "bench: %s done: %.0f pages/s\n", row.Name, row.PagesPS)
		return nil
	}
	for _, n := range sizes {
		if err := add(benchMesh(ctx, c, base, cfg, n, *par, o)); err != nil {
			return err
		}
		if o.inProcess {
			if err := add(benchInProcess(ctx, base, cfg, n, *par)); err != nil {
				return err
			}
		}
	}
	if !o.noColly {
		rows[0].RatioVsC = 1
	}
	if *output == "json" {
		return writeJSON(c.stdout, rows)
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	wide := *output == "wide"
	hdr := "RUN\tPAGES\tITEMS\tSECONDS\tPAGES/S\tITEMS/S\tPEAK RSS MiB\tMESH/COLLY\t"
	if wide {
		hdr += "SERVER MiB\tSERVER B/PAGE\tSERVER CPU ms/PAGE\t"
	}
	fmt.Fprintln(tw, hdr)
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%.2f\t%.0f\t%.0f\t%.0f\t%.2f\t", r.Name, r.Pages, r.Items, r.Seconds, r.PagesPS, r.ItemsPS,
			float64(r.PeakRSS)/(1<<20), r.RatioVsC)
		if wide {
			fmt.Fprintf(tw, "%.0f\t%.0f\t%.3f\t", float64(r.ServerRSS)/(1<<20), r.ServerBytesPerPage, r.ServerCPUPerPage)
		}
		fmt.Fprintln(tw)
	}
	_ = tw.Flush()
	if wide {
		for _, r := range rows {
			if len(r.ServerRSSEach) > 1 {
				fmt.Fprintf(c.stdout, "%s, each server's peak RSS:", r.Name)
				for i, b := range r.ServerRSSEach {
					fmt.Fprintf(c.stdout, " n%d %.0f MiB", i+1, float64(b)/(1<<20))
				}
				fmt.Fprintln(c.stdout)
			}
			if len(r.Streams) > 0 {
				fmt.Fprintf(c.stdout, "%s, streams at the end (server: name messages-written MiB-stored):\n", r.Name)
			}
			for _, s := range r.Streams {
				fmt.Fprintf(c.stdout, "  %s: %s %d %.1f\n", s.Server, s.Name, s.Written, float64(s.Bytes)/(1<<20))
			}
		}
	}
	fmt.Fprintln(c.stdout, "(mesh rows: nats-server, master and workers are separate processes over loopback TCP, PEAK RSS their sum;\n"+
		" in-process rows run all of it in this process; pages are unique pages fetched)")
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

// benchMesh crawls the site with a mesh as deployed: a nats-server, a
// master and n workers sharing par slots, each its own process (this
// binary's hidden bench-node modes), talking over loopback TCP.
func benchMesh(ctx context.Context, c *cli, base string, cfg synthsite.Config, n, par int, o *benchOpts) (benchResult, error) {
	dir, err := os.MkdirTemp("", "crawlmesh-bench-")
	if err != nil {
		return benchResult{}, err
	}
	defer os.RemoveAll(dir)
	var procs []*benchProc
	defer func() {
		// Workers and master first, the servers last, each with SIGTERM.
		for i := len(procs) - 1; i >= 0; i-- {
			procs[i].stop()
		}
	}()
	servers := max(o.servers, 1)
	var urls, routes []string
	ports := make([][2]int, servers)
	for i := range servers {
		for j := range 2 {
			if ports[i][j], err = freeLoopbackPort(); err != nil {
				return benchResult{}, err
			}
		}
		urls = append(urls, "nats://127.0.0.1:"+strconv.Itoa(ports[i][0]))
		routes = append(routes, "nats-route://127.0.0.1:"+strconv.Itoa(ports[i][1]))
	}
	// Partitions placed by tags: each group of R servers (R the
	// replicas) is tagged, and partition p goes to group p mod groups.
	replicas := o.replicas
	if replicas == 0 {
		replicas = 1
		if servers >= streams.AutoReplicas {
			replicas = streams.AutoReplicas // what the master's auto mode places
		}
	}
	groups, partTags := servers/replicas, ""
	if groups > 1 && o.partitions > 1 && !o.jsPlaces {
		for g := range groups {
			partTags += fmt.Sprintf(",crawlmesh-g%d", g)
		}
		partTags = partTags[1:]
	}
	var nss []*benchProc
	for i := range servers {
		args := []string{"--role", "nats", "--port", strconv.Itoa(ports[i][0]), "--store", filepath.Join(dir, "n"+strconv.Itoa(i+1))}
		if servers > 1 {
			args = append(args, "--name", "n"+strconv.Itoa(i+1), "--route-port", strconv.Itoa(ports[i][1]), "--routes", strings.Join(routes, ","))
		}
		if partTags != "" && i/replicas < groups {
			args = append(args, "--tag", fmt.Sprintf("crawlmesh-g%d", i/replicas))
		}
		if o.profPort > 0 && i == 0 {
			args = append(args, "--prof-port", strconv.Itoa(o.profPort))
		}
		ns, err := startBenchNode(c, "nats-server", args...)
		if err != nil {
			return benchResult{}, err
		}
		ns.cmd.Stdout = io.Discard
		if o.natsGOGC > 0 {
			ns.cmd.Env = append(ns.cmd.Env, "GOGC="+strconv.Itoa(o.natsGOGC))
		}
		if o.natsMemLim != "" {
			ns.cmd.Env = append(ns.cmd.Env, "GOMEMLIMIT="+o.natsMemLim)
		}
		if err := ns.start(); err != nil {
			return benchResult{}, err
		}
		procs = append(procs, ns)
		nss = append(nss, ns)
	}
	for i, ns := range nss {
		if err := waitNATS(ctx, ns, urls[i], 30*time.Second); err != nil {
			return benchResult{}, err
		}
	}
	url := strings.Join(urls, ",")
	parts := []struct {
		name string
		args []string
	}{{"master", []string{"--role", "master", "--id", "bench-master", "--url", url,
		"--partitions", strconv.Itoa(o.partitions), "--replicas", strconv.Itoa(replicas), "--partition-tags", partTags}}}
	for i := 1; i <= n; i++ {
		parts = append(parts, struct {
			name string
			args []string
		}{fmt.Sprintf("worker %d", i), []string{"--role", "worker",
			"--id", "bench-worker-" + strconv.Itoa(i), "--url", url, "--concurrency", strconv.Itoa(max(par/n, 1))}})
	}
	for _, pt := range parts {
		p, err := startBenchNode(c, pt.name, pt.args...)
		if err != nil {
			return benchResult{}, err
		}
		if err := p.start(); err != nil {
			return benchResult{}, err
		}
		procs = append(procs, p)
	}
	st, el, err := benchCrawl(ctx, url, base, cfg, n, procs, o.partitions > 1)
	if err != nil {
		return benchResult{}, err
	}
	r := benchResult{Name: fmt.Sprintf("mesh %d worker(s)", n), Pages: st.PagesOK, Items: st.Items, Seconds: el,
		PagesPS: float64(st.PagesOK) / el, ItemsPS: float64(st.Items) / el}
	for _, p := range procs {
		r.PeakRSS += procHWM(p.pid())
	}
	// With several servers: the largest server's peak, and the CPU of all.
	cpu := 0.0
	for _, ns := range nss {
		r.ServerRSS = max(r.ServerRSS, procHWM(ns.pid()))
		r.ServerRSSEach = append(r.ServerRSSEach, procHWM(ns.pid()))
		cpu += procCPU(ns.pid())
	}
	r.Streams = benchStreams(ctx, url)
	if st.PagesOK > 0 {
		r.ServerBytesPerPage = float64(r.ServerRSS) / float64(st.PagesOK)
		r.ServerCPUPerPage = cpu / float64(st.PagesOK) * 1000
	}
	return r, nil
}

// benchInProcess crawls the site with an embedded mesh of n workers
// sharing par slots, all in this process: no sockets between the mesh's
// parts, which no deployment has. Kept as a labelled extra row.
func benchInProcess(ctx context.Context, base string, cfg synthsite.Config, n, par int) (benchResult, error) {
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
	st, el, err := benchCrawl(ctx, m.url, base, cfg, 0, nil, false) // launchMesh returned with its workers joined
	if err != nil {
		return benchResult{}, err
	}
	return benchResult{Name: fmt.Sprintf("in-process mesh %d worker(s)", n), Pages: st.PagesOK, Items: st.Items, Seconds: el,
		PagesPS: float64(st.PagesOK) / el, ItemsPS: float64(st.Items) / el, PeakRSS: stop()}, nil
}

// benchCrawl registers the synthetic site's spider on the mesh at url,
// waits for n workers to be online, runs one crawl to its end and returns
// its status and how long it took from start to the last page. It fails
// early if one of procs exits.
func benchCrawl(ctx context.Context, url, base string, cfg synthsite.Config, n int, procs []*benchProc, spread bool) (crawlctl.Status, float64, error) {
	var st crawlctl.Status
	nc, js, err := natsconn.Dial(ctx, natsconn.Config{URL: url, Name: "crawlmesh-bench"}, nil, natsconn.Hooks{})
	if err != nil {
		return st, 0, err
	}
	defer nc.Close()
	y := synthsite.Spec("synth", base, cfg)
	if spread {
		y = strings.TrimRight(y, "\n") + "\npartition_by: url\n"
	}
	s, err := spec.Parse([]byte(y))
	if err != nil {
		return st, 0, err
	}
	b, _ := json.Marshal(s)
	dead := func() error {
		for _, p := range procs {
			if p.exited() {
				return fmt.Errorf("bench: %s exited during the benchmark (its log is above)", p.name)
			}
		}
		return nil
	}
	// Wait for the master's assets and for every worker's heartbeat, so
	// start-up is not counted as crawl time.
	var spiders, crawls, nodes jetstream.KeyValue
	for deadline := time.Now().Add(2 * time.Minute); ; {
		spiders, err = js.KeyValue(ctx, mesh.SpidersBucket)
		if err == nil {
			crawls, err = js.KeyValue(ctx, mesh.CrawlsBucket)
		}
		if err == nil {
			nodes, err = js.KeyValue(ctx, mesh.NodesBucket)
		}
		if err == nil {
			if keys, kerr := nodes.Keys(ctx); kerr == nil && countPrefix(keys, "bench-worker-") >= n {
				break
			}
		}
		if e := dead(); e != nil {
			return st, 0, e
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return st, 0, fmt.Errorf("bench: mesh not ready within 2m (master's assets, %d workers online): %v", n, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if _, err := spiders.Put(ctx, s.Name, b); err != nil {
		return st, 0, err
	}
	t0 := time.Now()
	id, err := crawlctl.Call(ctx, nc, mesh.APICrawlStart, crawlctl.APIRequest{Spider: s.Name}, 10*time.Second)
	if err != nil {
		return st, 0, err
	}
	for deadline := time.Now().Add(30 * time.Minute); ; {
		if st, err = crawlctl.ReadStatus(ctx, js, crawls, id); err != nil {
			return st, 0, err
		}
		if st.PagesOK+st.PagesFailed+st.Dead >= int64(cfg.Pages) || st.State != mesh.CrawlRunning {
			break
		}
		if e := dead(); e != nil {
			return st, 0, e
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return st, 0, fmt.Errorf("mesh crawl of %d pages did not finish: %+v", cfg.Pages, st)
		}
		// Each status read is a dozen requests to the server: poll gently
		// (0.5 % of a 20 s crawl), so the benchmark does not load what it
		// measures.
		time.Sleep(100 * time.Millisecond)
	}
	return st, time.Since(t0).Seconds(), nil
}

// benchStreams lists every stream of the mesh at url with the server
// that leads it, sorted by server and then by messages written; nil when
// the listing fails (it is a diagnostic, not a result).
func benchStreams(ctx context.Context, url string) []benchStream {
	nc, js, err := natsconn.Dial(ctx, natsconn.Config{URL: url, Name: "crawlmesh-bench"}, nil, natsconn.Hooks{})
	if err != nil {
		return nil
	}
	defer nc.Close()
	var out []benchStream
	l := js.ListStreams(ctx)
	for si := range l.Info() {
		srv := ""
		if si.Cluster != nil {
			srv = si.Cluster.Leader
		}
		out = append(out, benchStream{Name: si.Config.Name, Server: srv, Written: si.State.LastSeq, Bytes: si.State.Bytes})
	}
	if l.Err() != nil {
		return nil
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Server != out[j].Server {
			return out[i].Server < out[j].Server
		}
		return out[i].Written > out[j].Written
	})
	return out
}

func countPrefix(keys []string, prefix string) int {
	n := 0
	for _, k := range keys {
		if strings.HasPrefix(k, prefix) {
			n++
		}
	}
	return n
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

// procHWM reads the peak resident set (VmHWM) of a process from /proc
// (Linux); 0 elsewhere.
func procHWM(pid string) int64 { return procStatusField(pid, "VmHWM:") << 10 }

// procCPU reads the user+system CPU seconds of a process from /proc
// (Linux); 0 elsewhere.
func procCPU(pid string) float64 {
	b, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return 0
	}
	// Fields after the ")" that ends the command name: utime is field 14, stime 15.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseFloat(f[11], 64)
	stt, _ := strconv.ParseFloat(f[12], 64)
	return (ut + stt) / 100 // USER_HZ is 100 on Linux
}

func procStatusField(pid, field string) int64 {
	b, err := os.ReadFile("/proc/" + pid + "/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return n
		}
	}
	return 0
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
