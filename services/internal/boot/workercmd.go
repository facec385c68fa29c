package boot

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/crawlmesh/crawlmesh/pkg/fetch"
	"github.com/crawlmesh/crawlmesh/pkg/mesh"
	"github.com/crawlmesh/crawlmesh/pkg/nodeconfig"
)

// workerConfig is the worker binary's command line (and `crawlmesh worker`,
// which a host agent runs).
type workerConfig struct {
	nodeconfig.Node
	Concurrency    int
	MaxBodySize    int
	RequestTimeout time.Duration
	MaxAttempts    int
	Agent          string
}

func (c *workerConfig) options() WorkerOptions {
	return WorkerOptions{Concurrency: c.Concurrency, MaxAttempts: c.MaxAttempts, Agent: c.Agent,
		Fetch: fetch.Config{MaxBodySize: c.MaxBodySize, RequestTimeout: c.RequestTimeout}}
}

func (c *workerConfig) flags(out io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("worker", flag.ContinueOnError)
	fs.SetOutput(out)
	c.Register(fs, DefaultID(), "127.0.0.1:8091")
	c.TTLFromBucket = true // no --heartbeat-ttl: the master's decides
	fs.IntVar(&c.Concurrency, "concurrency", 32, "tasks in flight")
	fs.IntVar(&c.MaxBodySize, "max-body-size", 10<<20, "largest page body in bytes; larger pages are skipped")
	fs.DurationVar(&c.RequestTimeout, "request-timeout", 15*time.Second, "time limit of one HTTP request")
	fs.IntVar(&c.MaxAttempts, "max-attempts", 3, "fetch attempts before a transiently failing task goes to the dead letters")
	fs.StringVar(&c.Agent, "agent", "", "set by a host agent (crawlmesh agent) that runs this worker: its id, carried in the heartbeat; "+
		"the worker then takes \"drain\" on stdin and stops when stdin closes")
	fs.Usage = func() {
		fmt.Fprintln(out, "usage: worker [flags]\n\nA crawlmesh crawler node. Each flag can also be set with CRAWLMESH_<FLAG> (CRAWLMESH_NATS_URL for --nats).")
		fs.PrintDefaults()
	}
	return fs
}

func (c *workerConfig) validate() error {
	if c.Concurrency < 1 {
		return fmt.Errorf("--concurrency %d: must be at least 1", c.Concurrency)
	}
	if c.MaxBodySize < 1024 {
		return fmt.Errorf("--max-body-size %d: must be at least 1024", c.MaxBodySize)
	}
	if c.RequestTimeout <= 0 {
		return fmt.Errorf("--request-timeout %v: must be positive", c.RequestTimeout)
	}
	if c.MaxAttempts < 1 {
		return fmt.Errorf("--max-attempts %d: must be at least 1", c.MaxAttempts)
	}
	if c.Agent != "" {
		if err := mesh.ValidateNodeID(c.Agent); err != nil {
			return fmt.Errorf("--agent: %w", err)
		}
	}
	return nil
}

// RunWorker is a worker node's main: the worker binary and the hidden
// `crawlmesh worker` (what a host agent starts) both run it.
func RunWorker(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	var cfg workerConfig
	fs := cfg.flags(stderr)
	if err := Parse(fs, &cfg.Node, args, getenv); err != nil {
		return err
	}
	if err := cfg.validate(); err != nil {
		return err
	}
	opts := cfg.options()
	if cfg.Agent != "" {
		var stop context.CancelFunc
		ctx, stop = context.WithCancel(ctx)
		defer stop()
		drain := make(chan struct{})
		opts.Drain = drain
		// Our stderr is a pipe the agent reads: once the agent is gone, a
		// log line to it would kill this process with SIGPIPE (Go's rule
		// for fds 1 and 2), before the clean stop agentControl starts, so
		// its tasks waited out their ack wait and its key its TTL (found
		// by review). Ignored, the write fails and the worker stops.
		signal.Ignore(syscall.SIGPIPE)
		go agentControl(os.Stdin, drain, stop, cfg.Node.Logger(stderr))
	}
	env, err := Setup(ctx, &cfg.Node, mesh.RoleWorker, stderr)
	if err != nil {
		return err
	}
	runWorker, err := NewWorker(ctx, env, &cfg.Node, opts)
	if err != nil {
		env.Drain()
		return err
	}
	return env.Run(ctx, runWorker)
}

// agentControl reads the host agent's requests on r (the worker's stdin, a
// pipe the agent holds): the line "drain" drains the worker; the end of
// input means the agent is gone (even SIGKILLed), and the worker stops
// cleanly rather than run on unsupervised. The goroutine lives as long as
// the process: a read on a pipe cannot be interrupted, and the process
// exits when the worker returns.
func agentControl(r io.Reader, drain chan<- struct{}, stop context.CancelFunc, log *slog.Logger) {
	sc := bufio.NewScanner(r)
	drained := false
	for sc.Scan() {
		if strings.TrimSpace(sc.Text()) == "drain" && !drained {
			drained = true
			close(drain)
		}
	}
	log.Info("stdin closed: the host agent is gone; stopping")
	stop()
}
