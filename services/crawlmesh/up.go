package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/crawlmesh/crawlmesh/pkg/embedded"
	"github.com/crawlmesh/crawlmesh/pkg/metrics"
	"github.com/crawlmesh/crawlmesh/pkg/nodeconfig"
	"github.com/crawlmesh/crawlmesh/services/internal/boot"
)

type upConfig struct {
	demo        bool
	exitWhen    bool
	workers     int
	concurrency int
	data        string
	http        string
	natsPort    int
	node        nodeconfig.Node // heartbeat timing and logging for every node
}

func defaultDataDir() string {
	if d, err := os.UserCacheDir(); err == nil {
		return filepath.Join(d, "crawlmesh", "data")
	}
	return filepath.Join(os.TempDir(), "crawlmesh", "data")
}

func runUp(ctx context.Context, c *cli, args []string) error {
	var u upConfig
	fs := flag.NewFlagSet("up", flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	fs.BoolVar(&u.demo, "demo", false, "also serve a demo bookshop on loopback, crawl it with a progress bar and print a summary")
	fs.BoolVar(&u.exitWhen, "exit-when-done", false, "with --demo: stop the mesh once the demo crawl has finished (for scripts)")
	fs.IntVar(&u.workers, "workers", 3, "workers to run in this process")
	fs.IntVar(&u.concurrency, "concurrency", 32, "tasks in flight per worker")
	fs.StringVar(&u.data, "data", defaultDataDir(), "JetStream store directory")
	fs.StringVar(&u.http, "http", "127.0.0.1:8080", "listen address for /metrics and /healthz")
	fs.IntVar(&u.natsPort, "nats-port", 4222, "NATS client port on 127.0.0.1")
	fs.DurationVar(&u.node.HeartbeatInterval, "heartbeat-interval", time.Second, "time between heartbeats")
	fs.DurationVar(&u.node.HeartbeatTTL, "heartbeat-ttl", 3*time.Second, "TTL of bucket nodes")
	fs.StringVar(&u.node.LogLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&u.node.LogFormat, "log-format", "text", "text or json")
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return err
		}
		return usageError{err}
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q", fs.Arg(0))
	}
	if err := nodeconfig.ApplyEnv(fs, c.getenv); err != nil {
		return usageError{err}
	}
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
	return up(ctx, c, u)
}

func up(ctx context.Context, c *cli, u upConfig) error {
	log := u.node.Logger(c.stderr)
	ln, err := metrics.Listen("--http", u.http)
	if err != nil {
		return err
	}
	defer ln.Close()
	ns, err := embedded.Start(embedded.Config{Port: u.natsPort, StoreDir: u.data})
	if err != nil {
		return err
	}
	defer func() { ns.Shutdown(); ns.WaitForShutdown() }()
	url := ns.ClientURL()
	reg := metrics.NewRegistry()

	type part struct {
		env *boot.Env
		run func(context.Context) error
	}
	var parts []part
	defer func() {
		for _, p := range parts {
			p.env.Drain()
		}
	}()
	join := func(id, role string) (*boot.Env, nodeconfig.Node, error) {
		n := u.node
		n.ID, n.NATS.URL = id, url
		env, err := boot.Join(ctx, &n, role, log, reg)
		return env, n, err
	}
	base := boot.DefaultID()
	menv, mn, err := join(base+"-master", "master")
	if err != nil {
		return err
	}
	m, err := boot.NewMaster(ctx, menv, &mn, 0)
	if err != nil {
		menv.Drain()
		return err
	}
	parts = append(parts, part{menv, m.Run})
	for i := 1; i <= u.workers; i++ {
		env, n, err := join(base+"-worker-"+strconv.Itoa(i), "worker")
		if err != nil {
			return err
		}
		runWorker, err := boot.NewWorker(ctx, env, &n, boot.WorkerOptions{Concurrency: u.concurrency})
		if err != nil {
			env.Drain()
			return err
		}
		parts = append(parts, part{env, runWorker})
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, len(parts)+2)
	wg.Go(func() { errs <- metrics.Serve(ctx, ln, metrics.Mux(reg)) })
	for _, p := range parts {
		wg.Go(func() {
			// A worker that drains or is shut down by command stops alone;
			// the mesh keeps running until interrupted.
			if err := p.run(ctx); err != nil {
				errs <- err
				cancel()
			}
		})
	}
	fmt.Fprintf(c.stderr, "crawlmesh up: NATS %s (JetStream in %s), metrics http://%s/metrics, 1 master and %d workers; Ctrl-C stops\n",
		url, u.data, ln.Addr(), u.workers)
	if u.demo {
		wg.Go(func() {
			err := runDemo(ctx, c, url, log)
			if err != nil && ctx.Err() == nil {
				errs <- err
				cancel()
				return
			}
			if u.exitWhen {
				cancel()
			}
		})
	}
	<-ctx.Done()
	wg.Wait()
	close(errs)
	var all []error
	for err := range errs {
		all = append(all, err)
	}
	fmt.Fprintln(c.stderr, "crawlmesh up: stopped")
	return errors.Join(all...)
}
