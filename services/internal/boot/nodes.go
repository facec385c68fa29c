package boot

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/crawlmesh/crawlmesh/pkg/clusterconfig"
	"github.com/crawlmesh/crawlmesh/pkg/crawlctl"
	"github.com/crawlmesh/crawlmesh/pkg/crawler"
	"github.com/crawlmesh/crawlmesh/pkg/election"
	"github.com/crawlmesh/crawlmesh/pkg/envsubst"
	"github.com/crawlmesh/crawlmesh/pkg/fetch"
	"github.com/crawlmesh/crawlmesh/pkg/files"
	"github.com/crawlmesh/crawlmesh/pkg/gospiders"
	"github.com/crawlmesh/crawlmesh/pkg/master"
	"github.com/crawlmesh/crawlmesh/pkg/mesh"
	"github.com/crawlmesh/crawlmesh/pkg/nodeconfig"
	"github.com/crawlmesh/crawlmesh/pkg/politeness"
	"github.com/crawlmesh/crawlmesh/pkg/progspider"
	"github.com/crawlmesh/crawlmesh/pkg/robotstore"
	"github.com/crawlmesh/crawlmesh/pkg/scheduler"
	"github.com/crawlmesh/crawlmesh/pkg/sink"
	"github.com/crawlmesh/crawlmesh/pkg/spec"
	"github.com/crawlmesh/crawlmesh/pkg/worker"
	"github.com/crawlmesh/crawlmesh/streams"
)

// NewMaster builds a master node on env; schedules are evaluated in tz.
func init() {
	// spider apply, the master and the worker all refuse a script that
	// does not compile, with its line and column.
	spec.CheckScript = progspider.CheckScript
}

func NewMaster(ctx context.Context, env *Env, n *nodeconfig.Node, retention time.Duration, tz *time.Location) (*master.Master, error) {
	kvs, err := openKVs(ctx, env.JS, mesh.SpidersBucket, mesh.CrawlsBucket, mesh.SeenBucket, mesh.ElectionBucket, mesh.SinksBucket)
	if err != nil {
		return nil, err
	}
	ctl := crawlctl.New(env.JS, kvs[0], kvs[1], kvs[2], env.Log.With("node", n.ID))
	// The bucket's TTL is the lease every master renews against.
	st, err := kvs[3].Status(ctx)
	if err != nil {
		return nil, fmt.Errorf("bucket %s: %w", mesh.ElectionBucket, err)
	}
	el, err := election.New(kvs[3], n.ID, election.WithLease(st.TTL()), election.WithPriority(n.Priority),
		election.WithLogger(env.Log.With("node", n.ID)))
	if err != nil {
		return nil, err
	}
	sched := scheduler.New(kvs[0], func(ctx context.Context, spider, id string) error {
		_, err := ctl.StartID(ctx, spider, id)
		if errors.Is(err, crawlctl.ErrExists) {
			return scheduler.ErrFired
		}
		return err
	}, tz, env.Log.With("node", n.ID))
	cw, _, err := loadConfig(ctx, env, n, mesh.RoleMaster, nodeBase(n))
	if err != nil {
		return nil, err
	}
	// Sinks deliver from the leader; their metrics carry the node's id.
	sinks, err := sink.New(sink.Config{JS: env.JS, Sinks: kvs[4], Crawls: kvs[1], Node: n.ID, Log: env.Log,
		Registerer: prometheus.WrapRegistererWith(prometheus.Labels{"node": n.ID}, env.Reg)})
	if err != nil {
		return nil, err
	}
	m, err := master.New(env.NC, env.Nodes, master.Config{
		ID: n.ID, HeartbeatInterval: n.HeartbeatInterval, HeartbeatTTL: n.HeartbeatTTL,
		OfflineRetention: retention, Clock: n.Clock(), Log: env.Log, Registerer: env.Reg, Crawls: ctl, Elector: el,
		Scheduler: sched, Config: cw, Sinks: sinks,
		Apply: func(e clusterconfig.Effective) []error { setLevel(n, e); return nil },
	})
	if err != nil {
		return nil, err
	}
	env.node = m.Healthy
	return m, nil
}

// WorkerOptions are a worker's crawling settings.
type WorkerOptions struct {
	Concurrency int
	Fetch       fetch.Config
	MaxAttempts int
	Backoff     time.Duration
	GoSpiders   map[string]fetch.GoSpider // nil: gospiders.Builtin()
	// Agent and Drain: see worker.Config.
	Agent string
	Drain <-chan struct{}
	// WithMasters: masters share this process's environment (`crawlmesh
	// up`), so the sinks' variables are kept from command spiders too.
	WithMasters bool
}

// NewWorker builds a worker node on env and returns its run function. It
// waits for a master to create the task stream if none has yet.
func NewWorker(ctx context.Context, env *Env, n *nodeconfig.Node, o WorkerOptions) (func(context.Context) error, error) {
	reg := prometheus.WrapRegistererWith(prometheus.Labels{"node": n.ID}, env.Reg)
	log := env.Log.With("node", n.ID)
	goSpiders := o.GoSpiders
	if goSpiders == nil {
		goSpiders = gospiders.Builtin()
	}
	var crawls *crawler.Crawls
	var gate *politeness.Gate
	var w *worker.Worker // the task side needs its fetch slots
	var programs *progspider.Runner
	var fileCache *files.Cache
	// The stored configuration, read before anything is built from it.
	cw, eff, err := loadConfig(ctx, env, n, mesh.RoleWorker, workerBase(n, o))
	if err != nil {
		return nil, err
	}
	var liveMu sync.Mutex // guards f and cr, which the config watcher updates
	var f *fetch.Fetcher
	var cr *crawler.Crawler

	ready := make(chan struct{})
	// The task side opens once a master has created the stream and buckets.
	tasks := func(ctx context.Context) ([]jetstream.Consumer, func(context.Context, jetstream.Msg), error) {
		parts, err := crawler.Partitions(ctx, env.JS)
		if err != nil {
			return nil, nil, fmt.Errorf("%w (a master creates it)", err)
		}
		var conss []jetstream.Consumer
		for p := range parts {
			cons, err := env.JS.Consumer(ctx, mesh.TasksStreamOf(p), mesh.TasksConsumer)
			if err != nil {
				return nil, nil, fmt.Errorf("open consumer %s/%s (a master creates it): %w", mesh.TasksStreamOf(p), mesh.TasksConsumer, err)
			}
			conss = append(conss, cons)
		}
		cons := conss[0]
		kvs, err := openKVs(ctx, env.JS, mesh.SeenBucket, mesh.CrawlsBucket, mesh.HostsBucket, mesh.ThrottleBucket)
		if err != nil {
			return nil, nil, err
		}
		// robots.txt is shared mesh-wide through bucket robots, which a
		// master creates like every asset.
		robotsKV, err := streams.WaitKV(ctx, env.JS, mesh.RobotsBucket)
		if err != nil {
			return nil, nil, err
		}
		// Scripts, commands' files and seed lists live in Object Store
		// files, which a master creates like every asset.
		store, err := files.Open(ctx, env.JS)
		if err != nil {
			return nil, nil, err
		}
		wd, err := workDir(n.ID)
		if err != nil {
			return nil, nil, err
		}
		cache, err := files.NewCache(store, filepath.Join(wd, "files"))
		if err != nil {
			return nil, nil, err
		}
		programs = progspider.New(progspider.Config{Files: cache, WorkDir: filepath.Join(wd, "spiders"),
			Processes: commandProcesses(o.Concurrency), Log: log, Stderr: spiderLog(env.JS, n.ID),
			HideEnv: func() []string { return meshSecretNames(env.JS, o.WithMasters) }})
		fileCache = cache
		fc := o.Fetch
		fc.Robots = robotstore.New(robotsKV, robotstore.Options{Owner: n.ID, Log: log})
		fc.RequestTimeout = eff.Duration(clusterconfig.RequestTimeout)
		crawls = crawler.NewCrawls(kvs[1], log)
		crawls.OnEnd(programs.EndCrawl)
		// A permit's lease is the request timeout at start plus a margin:
		// request_timeout raised live past it may let a slow request's slot
		// go early (politeness only; see the README's config section).
		timeout := fc.RequestTimeout
		gate = politeness.New(kvs[2], kvs[3], n.ID, timeout+5*time.Second, log)
		gate.Broadcast(env.NC)
		waits := promauto.With(reg).NewHistogram(prometheus.HistogramOpts{Name: "crawlmesh_host_wait_seconds",
			Help:    "Time tasks waited for their host's turn (per-host parallelism and delay, mesh-wide).",
			Buckets: []float64{.01, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}})
		gate.OnWait(func(d time.Duration) { waits.Observe(d.Seconds()) })
		close(ready)
		// Tell the server a long task is alive well before its AckWait.
		keepAlive := cons.CachedInfo().Config.AckWait / 3
		liveMu.Lock()
		defer liveMu.Unlock()
		f = fetch.New(fc, goSpiders)
		cr = crawler.New(env.JS, kvs[0], crawls, f, crawler.Config{
			Node: n.ID, KeepAlive: keepAlive, Log: log, Reg: reg,
			Gate: gate, Slots: w.Slots(), Taking: w.Taking, Programs: programs,
		})
		applyCrawling(cw.Effective(), f, cr)
		return conss, cr.Handle, nil
	}
	w, err = worker.New(env.NC, env.Nodes, worker.Config{
		ID: n.ID, Concurrency: eff.Int(clusterconfig.Concurrency), HeartbeatInterval: n.HeartbeatInterval, HeartbeatTTL: n.HeartbeatTTL,
		Clock: n.Clock(), Log: env.Log, Registerer: env.Reg, Tasks: tasks, Agent: o.Agent, Drain: o.Drain,
		GoSpiders: slices.Sorted(maps.Keys(goSpiders)),
		Paused:    eff.Bool(clusterconfig.Paused), Config: cw,
		Apply: func(e clusterconfig.Effective) []error {
			setLevel(n, e)
			liveMu.Lock()
			defer liveMu.Unlock()
			applyCrawling(e, f, cr)
			return nil
		},
	})
	if err != nil {
		return nil, err
	}
	env.node = w.Healthy
	return func(ctx context.Context) error {
		ctx, cancel := context.WithCancel(ctx)
		var wg sync.WaitGroup
		wg.Go(func() {
			select {
			case <-ready:
				var inner sync.WaitGroup
				inner.Go(func() { _ = gate.Run(ctx) })
				inner.Go(func() { _ = fileCache.Run(ctx) })
				_ = crawls.Run(ctx)
				inner.Wait()
				programs.Close()
			case <-ctx.Done():
			}
		})
		err := w.Run(ctx)
		cancel()
		wg.Wait()
		return err
	}, nil
}

// commandProcesses is how many processes a command spider runs at most on
// this worker: one page at a time each, and CPU-bound on parsing, so more
// than two per core only adds switching and memory (measured: 29 Python
// processes took 411 MiB and were no faster).
func commandProcesses(concurrency int) int {
	return max(1, min(concurrency, 2*runtime.NumCPU()))
}

// spiderLog writes a command spider's stderr lines (and a script's
// console.log lines) into the crawl's logs, where `crawl logs` shows them.
func spiderLog(js jetstream.JetStream, node string) func(crawl, spider, line string) {
	return func(crawl, spider, line string) {
		b, _ := json.Marshal(mesh.LogEntry{Time: time.Now().UTC(), Node: node, Outcome: "stderr", Error: spider + ": " + line})
		// Best effort, like every log line: a lost one must not hold up a page.
		_, _ = js.PublishAsync(mesh.LogSubject(crawl), b)
	}
}

func openKVs(ctx context.Context, js jetstream.JetStream, names ...string) ([]jetstream.KeyValue, error) {
	out := make([]jetstream.KeyValue, len(names))
	for i, n := range names {
		kv, err := js.KeyValue(ctx, n)
		if err != nil {
			return nil, fmt.Errorf("open bucket %s: %w (a master creates it; is one running this version?)", n, err)
		}
		out[i] = kv
	}
	return out, nil
}

// meshSecretNames are the variables the mesh's own stored settings refer
// to as ${env:NAME}: the cluster configuration's (proxies) and, with
// masters in the process, the sinks' (read by masters, which share the
// process's environment with its workers under `crawlmesh up`). A command
// spider does not get them (found by review: under up, a spider read a
// webhook sink's token).
func meshSecretNames(js jetstream.JetStream, withMasters bool) []string {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	buckets := []string{mesh.ConfigBucket}
	if withMasters {
		buckets = append(buckets, mesh.SinksBucket)
	}
	var names []string
	for _, bucket := range buckets {
		kv, err := js.KeyValue(ctx, bucket)
		if err != nil {
			continue
		}
		keys, err := kv.ListKeys(ctx)
		if err != nil {
			continue
		}
		for k := range keys.Keys() {
			if e, err := kv.Get(ctx, k); err == nil {
				names = append(names, envsubst.Refs(string(e.Value()))...)
			}
		}
	}
	return names
}
