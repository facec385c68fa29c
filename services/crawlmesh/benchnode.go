package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/spf13/cobra"

	"github.com/crawlmesh/crawlmesh/pkg/embedded"
	"github.com/crawlmesh/crawlmesh/pkg/metrics"
	"github.com/crawlmesh/crawlmesh/pkg/nodeconfig"
	"github.com/crawlmesh/crawlmesh/services/internal/boot"
)

// benchNodeCmd is the hidden `crawlmesh bench-node`: one part of the mesh
// (nats-server, master or worker) in its own process, so `crawlmesh bench`
// runs the mesh as it is deployed (separate processes over TCP) from its
// own binary alone. The nats role runs the same server code as the
// nats-server release, embedded, in a process of its own.
type benchNodeOpts struct {
	role, id, nats, store, http string
	port, profPort, concurrency int
	partitions, replicas        int
	// partitionTags: the master's --partition-tags; tag: the server's.
	partitionTags, tag string
	// nats role in a cluster: its name, route port and every route URL.
	name      string
	routePort int
	routes    string
}

func newBenchNodeCmd(c *cli) *cobra.Command {
	var o benchNodeOpts
	cmd := &cobra.Command{
		Use:         "bench-node",
		Short:       "run one part of the mesh for crawlmesh bench (internal)",
		Hidden:      true,
		Args:        nArgs(0, 0, "bench-node"),
		Annotations: map[string]string{noEnv: "yes"},
		RunE:        func(cmd *cobra.Command, _ []string) error { return runBenchNode(cmd.Context(), c, &o) },
	}
	fl := cmd.Flags()
	fl.StringVar(&o.role, "role", "", "nats, master or worker")
	fl.StringVar(&o.id, "id", "", "node id")
	fl.StringVar(&o.nats, "url", "", "NATS URL (master, worker)")
	fl.StringVar(&o.store, "store", "", "JetStream store directory (nats)")
	fl.IntVar(&o.port, "port", 0, "client port (nats)")
	fl.IntVar(&o.profPort, "prof-port", 0, "the server's pprof port (nats); 0: none")
	fl.StringVar(&o.http, "http", "", "metrics and pprof address (master, worker); empty: none")
	fl.IntVar(&o.concurrency, "concurrency", 32, "fetch slots (worker)")
	fl.IntVar(&o.partitions, "partitions", 1, "partitions of the frontier and seen-set (master)")
	fl.IntVar(&o.replicas, "replicas", 0, "replicas of every asset (master); 0 chooses")
	fl.StringVar(&o.partitionTags, "partition-tags", "", "the master's --partition-tags")
	fl.StringVar(&o.tag, "tag", "", "server tag (nats in a cluster)")
	fl.StringVar(&o.name, "name", "bench", "server name (nats)")
	fl.IntVar(&o.routePort, "route-port", 0, "cluster route port (nats in a cluster)")
	fl.StringVar(&o.routes, "routes", "", "comma-separated route URLs of every server (nats in a cluster)")
	return cmd
}

func runBenchNode(ctx context.Context, c *cli, o *benchNodeOpts) error {
	// The bench holds this process's stdin open and never writes: EOF
	// means the bench is gone (killed), and so is the reason to run. A
	// killed bench had left its servers running, holding its output
	// pipes, which hung the test that ran it (seen in CI).
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		cancel()
	}()
	if o.role == "nats" && o.routes != "" {
		return runBenchClusterNode(ctx, c, o)
	}
	if o.role == "nats" {
		ns, err := embedded.Start(embedded.Config{Port: o.port, StoreDir: o.store, ProfPort: o.profPort})
		if err != nil {
			return err
		}
		fmt.Fprintln(c.stdout, ns.ClientURL())
		<-ctx.Done()
		ns.Shutdown()
		ns.WaitForShutdown()
		return nil
	}
	n := nodeconfig.Node{ID: o.id, HTTP: o.http, Pprof: o.http != "", HeartbeatInterval: time.Second,
		HeartbeatTTL: 3 * time.Second, LogLevel: "error", LogFormat: "text", Partitions: o.partitions, Replicas: o.replicas,
		PartitionTags: o.partitionTags}
	n.NATS.URL = o.nats
	if err := n.Validate(); err != nil {
		return usageError{err}
	}
	env, err := boot.Setup(ctx, &n, o.role, c.stderr)
	if err != nil {
		return err
	}
	switch o.role {
	case "master":
		m, err := boot.NewMaster(ctx, env, &n, 0, time.UTC)
		if err != nil {
			env.Drain()
			return err
		}
		return env.Run(ctx, m.Run)
	case "worker":
		run, err := boot.NewWorker(ctx, env, &n, boot.WorkerOptions{Concurrency: o.concurrency})
		if err != nil {
			env.Drain()
			return err
		}
		return env.Run(ctx, run)
	}
	env.Drain()
	return usagef("--role %q: want nats, master or worker", o.role)
}

// runBenchClusterNode runs one server of a loopback cluster.
func runBenchClusterNode(ctx context.Context, c *cli, o *benchNodeOpts) error {
	// Equal JetStream limits on every server: JetStream places a new R1
	// stream on the server with the most storage available, and only on a
	// tie on the one with the fewest streams; limits taken from each
	// server's free disk differ by a few bytes and put every stream on one.
	opts := &server.Options{ServerName: o.name, Host: "127.0.0.1", Port: o.port, JetStream: true, StoreDir: o.store,
		JetStreamMaxStore: 64 << 30, JetStreamMaxMemory: 1 << 30,
		NoSigs: true, NoLog: true, ProfPort: o.profPort, Tags: tagList(o.tag),
		Cluster: server.ClusterOpts{Name: "bench", Host: "127.0.0.1", Port: o.routePort},
		Routes:  server.RoutesFromStr(o.routes)}
	ns, err := server.NewServer(opts)
	if err != nil {
		return fmt.Errorf("nats-server %s: %w", o.name, err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(30 * time.Second) {
		ns.Shutdown()
		return fmt.Errorf("nats-server %s did not start within 30s", o.name)
	}
	fmt.Fprintln(c.stdout, ns.ClientURL())
	<-ctx.Done()
	ns.Shutdown()
	ns.WaitForShutdown()
	return nil
}

func tagList(tag string) []string {
	if tag == "" {
		return nil
	}
	return []string{tag}
}

// benchProc is a child process of `crawlmesh bench`.
type benchProc struct {
	name  string
	cmd   *exec.Cmd
	done  chan struct{}
	stdin io.WriteCloser // held open while this process lives (see runBenchNode)
}

// startBenchNode starts `<this binary> bench-node args...`; its output goes
// to this process's standard error, except the nats role's first line
// (its URL), which is read from stdout.
func startBenchNode(c *cli, name string, args ...string) (*benchProc, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("bench: locate this binary to run %s: %w", name, err)
	}
	cmd := exec.Command(self, append([]string{"bench-node"}, args...)...)
	cmd.Stderr = c.stderr
	cmd.Env = benchEnv()
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, fmt.Errorf("bench: %s: %w", name, err)
	}
	p := &benchProc{name: name, cmd: cmd, done: make(chan struct{}), stdin: stdin}
	return p, nil
}

// benchEnv is this process's environment without CRAWLMESH_* variables,
// so a user's settings for a real mesh do not leak into the benchmark's.
func benchEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "CRAWLMESH_") {
			env = append(env, kv)
		}
	}
	return env
}

func (p *benchProc) start() error {
	if err := p.cmd.Start(); err != nil {
		return fmt.Errorf("bench: start %s: %w", p.name, err)
	}
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	return nil
}

func (p *benchProc) pid() string { return strconv.Itoa(p.cmd.Process.Pid) }

// stop sends SIGTERM and waits up to 15 s, then kills.
func (p *benchProc) stop() {
	if p.cmd.Process == nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// exited reports whether the process has ended.
func (p *benchProc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// waitNATS waits until url accepts a NATS connection, or the server
// process ends, or the deadline passes.
func waitNATS(ctx context.Context, p *benchProc, url string, within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		nc, err := nats.Connect(url, nats.Timeout(time.Second))
		if err == nil {
			nc.Close()
			return nil
		}
		if p.exited() {
			return fmt.Errorf("bench: %s exited before accepting connections", p.name)
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("bench: %s not accepting connections at %s within %v: %w", p.name, url, within, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// freeLoopbackPort returns a loopback TCP port that was free a moment ago.
func freeLoopbackPort() (int, error) {
	ln, err := metrics.Listen("bench", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	_, port, _ := strings.Cut(ln.Addr().String(), ":")
	return strconv.Atoi(port)
}
