package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"

	"github.com/crawlmesh/crawlmesh/pkg/embedded"
	"github.com/crawlmesh/crawlmesh/pkg/httpapi"
	"github.com/crawlmesh/crawlmesh/pkg/metrics"
	"github.com/crawlmesh/crawlmesh/pkg/nodeconfig"
	"github.com/crawlmesh/crawlmesh/services/internal/boot"
)

type upConfig struct {
	natsGiven   string // a --nats given on the command line: refused
	demo        bool
	exitWhen    bool
	workers     int
	concurrency int
	data        string
	http        string
	natsPort    int
	tokenFile   string
	verbose     bool
	node        nodeconfig.Node // heartbeat timing and logging for every node
}

func defaultDataDir() string {
	if d, err := os.UserCacheDir(); err == nil {
		return filepath.Join(d, "crawlmesh", "data")
	}
	return filepath.Join(os.TempDir(), "crawlmesh", "data")
}

func newUpCmd(c *cli) *cobra.Command {
	var u upConfig
	cmd := &cobra.Command{
		Use:   "up",
		Short: "run the whole mesh in this process on an embedded nats-server",
		Long: "up runs an embedded nats-server (JetStream on disk under --data), one master and --workers workers,\n" +
			"with the web console, /metrics and the HTTP API on --http. In a terminal the nodes' logs go to a file under --data\n" +
			"(its path is printed; -v shows them here too); otherwise they go to standard error.",
		Args: nArgs(0, 0, "up [flags]"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			// (A value from its CRAWLMESH_* variable, meant for the other
			// commands, is not refused.)
			if fl := cmd.Flags().Lookup("nats"); fl != nil && fl.Changed && c.getenv(nodeconfig.EnvName(fl.Name)) != fl.Value.String() {
				u.natsGiven = fl.Value.String()
			}
			return runUp(cmd.Context(), c, u)
		},
	}
	fs := cmd.Flags()
	fs.BoolVar(&u.demo, "demo", false, "also serve a demo bookshop on loopback, crawl it with a progress bar and print a summary")
	fs.BoolVar(&u.exitWhen, "exit-when-done", false, "with --demo: stop the mesh once the demo crawl has finished (for scripts)")
	fs.IntVar(&u.workers, "workers", 3, "workers to run in this process")
	fs.IntVar(&u.concurrency, "concurrency", 32, "tasks in flight per worker")
	fs.StringVar(&u.data, "data", defaultDataDir(), "JetStream store directory (and, in a terminal, the nodes' log file)")
	fs.StringVar(&u.http, "http", "127.0.0.1:8080", "listen address for the console, /metrics, /healthz and the HTTP API")
	fs.IntVar(&u.natsPort, "nats-port", 4222, "NATS client port on 127.0.0.1")
	fs.IntVar(&u.node.Partitions, "partitions", 0, "partitions of the frontier and seen-set: 0 keeps the store's count (1 for a new one); see deploy/OPERATIONS.md")
	fs.StringVar(&u.tokenFile, "api-token-file", "", "file holding the bearer token that state-changing HTTP API requests must carry (or env "+boot.APITokenEnv+"); none: the API is read-only")
	fs.DurationVar(&u.node.HeartbeatInterval, "heartbeat-interval", time.Second, "time between heartbeats")
	fs.DurationVar(&u.node.HeartbeatTTL, "heartbeat-ttl", 3*time.Second, "TTL of bucket nodes")
	fs.Var(nodeconfig.LevelVar(&u.node.LogLevel, "info"), "log-level", "debug, info, warn or error")
	fs.StringVar(&u.node.LogFormat, "log-format", "text", "text or json")
	fs.BoolVarP(&u.verbose, "verbose", "v", false, "in a terminal: show the nodes' logs here too, not only in the log file under --data")
	_ = cmd.MarkFlagDirname("data")
	return cmd
}

func runUp(ctx context.Context, c *cli, u upConfig) error {
	if u.workers < 0 || u.workers > 256 {
		return usagef("--workers %d: want 0-256", u.workers)
	}
	if u.exitWhen && !u.demo {
		return usagef("--exit-when-done goes with --demo")
	}
	if u.demo && u.workers == 0 {
		return usagef("--demo needs at least one worker")
	}
	if u.concurrency < 1 {
		return usagef("--concurrency %d: must be at least 1", u.concurrency)
	}
	u.node.ID = boot.DefaultID() + "-master"
	if err := u.node.Validate(); err != nil {
		return usageError{err}
	}
	if err := metrics.ValidateAddr("--http", u.http); err != nil {
		return usageError{err}
	}
	if u.natsGiven != "" {
		// --nats is a global flag for the commands that talk to a mesh;
		// up runs its own server, and silently ignoring it misled.
		return usagef("--nats %s: up runs its own NATS server (choose its port with --nats-port); --nats is for the commands that talk to a running mesh", u.natsGiven)
	}
	return up(ctx, c, u)
}

func up(ctx context.Context, c *cli, u upConfig) error {
	logw, logFile, closeLog, err := upLogs(c, u)
	if err != nil {
		return err
	}
	defer closeLog()
	log := u.node.Logger(logw)
	token, err := boot.APIToken(u.tokenFile, c.getenv)
	if err != nil {
		return usageError{err}
	}
	ln, err := metrics.Listen("--http", u.http)
	if err != nil {
		return err
	}
	defer ln.Close()
	reg := metrics.NewRegistry()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	m, err := launchMesh(ctx, cancel, u, log, reg)
	if err != nil {
		return err
	}
	mux := metrics.Mux(reg, nil)
	boot.MountMaster(mux, m.api(token)) // the HTTP API and the console at /
	m.wg.Go(func() {
		if err := metrics.Serve(ctx, ln, mux); err != nil {
			m.fail(err)
		}
	})
	fmt.Fprintf(c.stderr, "crawlmesh up: NATS %s (JetStream in %s), console http://%s/, metrics http://%s/metrics, API http://%s%s, 1 master and %d workers; Ctrl-C stops\n",
		m.url, u.data, ln.Addr(), ln.Addr(), ln.Addr(), httpapi.Prefix, u.workers)
	if logFile != "" {
		more := "; -v shows them here too"
		if u.verbose {
			more = ""
		}
		fmt.Fprintf(c.stderr, "crawlmesh up: the nodes' logs go to %s%s\n", logFile, more)
	}
	if u.demo {
		m.wg.Go(func() {
			err := runDemo(ctx, c, m.url, log, !u.exitWhen)
			if err != nil && ctx.Err() == nil {
				m.fail(err)
				return
			}
			if u.exitWhen {
				cancel()
			}
		})
	}
	<-ctx.Done()
	err = m.wait()
	fmt.Fprintln(c.stderr, "crawlmesh up: stopped")
	return err
}

// upLogs picks where the nodes' logs go. In a terminal, to a file under
// --data (and with -v to the terminal too), so that a person sees where
// things are, the progress bar and the summary; otherwise (scripts, CI,
// containers) to standard error as always. It returns the file's path
// ("" for none) and a function that closes it.
func upLogs(c *cli, u upConfig) (io.Writer, string, func(), error) {
	if !isTerminal(c.stderr) {
		return c.stderr, "", func() {}, nil
	}
	if err := os.MkdirAll(u.data, 0o755); err != nil {
		return nil, "", nil, fmt.Errorf("--data %s: %w", u.data, err)
	}
	path := filepath.Join(u.data, "crawlmesh-up.log")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, "", nil, fmt.Errorf("log file: %w", err)
	}
	var w io.Writer = f
	if u.verbose {
		w = io.MultiWriter(f, c.stderr)
	}
	return w, path, func() { _ = f.Close() }, nil
}

// embeddedMesh is a nats-server, a master and workers in this process.
type embeddedMesh struct {
	url    string
	api    func(token string) http.Handler // the master's HTTP API
	cancel context.CancelFunc
	wg     sync.WaitGroup
	stop   func()

	mu   sync.Mutex
	errs []error
}

// launchMesh starts the server and the nodes; they run until ctx is done
// (cancel is called when a node fails). wait stops and releases everything.
func launchMesh(ctx context.Context, cancel context.CancelFunc, u upConfig, log *slog.Logger, reg *prometheus.Registry) (*embeddedMesh, error) {
	ns, err := embedded.Start(embedded.Config{Port: u.natsPort, StoreDir: u.data})
	if err != nil {
		return nil, err
	}
	m := &embeddedMesh{url: ns.ClientURL(), cancel: cancel}
	var envs []*boot.Env
	m.stop = func() {
		for _, e := range envs {
			e.Drain()
		}
		ns.Shutdown()
		ns.WaitForShutdown()
	}
	var runs []func(context.Context) error
	join := func(id, role string) (*boot.Env, nodeconfig.Node, error) {
		n := u.node
		n.ID, n.NATS.URL = id, m.url
		env, err := boot.Join(ctx, &n, role, log, reg)
		if err == nil {
			envs = append(envs, env)
		}
		return env, n, err
	}
	base := boot.DefaultID()
	menv, mn, err := join(base+"-master", "master")
	if err != nil {
		m.stop()
		return nil, err
	}
	mst, err := boot.NewMaster(ctx, menv, &mn, 0, time.UTC)
	if err != nil {
		m.stop()
		return nil, err
	}
	// The master carries up's console, API and /metrics view: once it is
	// shut down by command, up stops as a master process does. Served on
	// without it, they showed the master online and /healthz ok, frozen
	// at its last beat (found by review).
	runs = append(runs, func(ctx context.Context) error {
		err := mst.Run(ctx)
		if err == nil && ctx.Err() == nil {
			log.Info("the master was shut down by command: crawlmesh up stops")
			m.cancel()
		}
		return err
	})
	m.api = func(token string) http.Handler { return menv.APIHandler(mst, token) }
	for i := 1; i <= u.workers; i++ {
		env, n, err := join(base+"-worker-"+strconv.Itoa(i), "worker")
		if err != nil {
			m.stop()
			return nil, err
		}
		runWorker, err := boot.NewWorker(ctx, env, &n, boot.WorkerOptions{Concurrency: u.concurrency, WithMasters: true})
		if err != nil {
			m.stop()
			return nil, err
		}
		runs = append(runs, runWorker)
	}
	for _, run := range runs {
		m.wg.Go(func() {
			// A worker that drains or is shut down by command stops alone;
			// the mesh keeps running until interrupted.
			if err := run(ctx); err != nil {
				m.fail(err)
			}
		})
	}
	return m, nil
}

func (m *embeddedMesh) fail(err error) {
	m.mu.Lock()
	m.errs = append(m.errs, err)
	m.mu.Unlock()
	m.cancel()
}

// wait waits for every node after ctx is done, then stops the server.
func (m *embeddedMesh) wait() error {
	m.wg.Wait()
	m.stop()
	m.mu.Lock()
	defer m.mu.Unlock()
	return errors.Join(m.errs...)
}
