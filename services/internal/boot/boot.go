// Package boot is the start-up and shutdown sequence the master and worker
// binaries share: flags and env, logger, HTTP listener, NATS connection,
// JetStream assets, then the node's Run and a clean drain of the connection.
package boot

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/crawlmesh/crawlmesh/pkg/mesh"
	"github.com/crawlmesh/crawlmesh/pkg/metrics"
	"github.com/crawlmesh/crawlmesh/pkg/natsconn"
	"github.com/crawlmesh/crawlmesh/pkg/nodeconfig"
	"github.com/crawlmesh/crawlmesh/pkg/signals"
	"github.com/crawlmesh/crawlmesh/streams"
)

// DefaultID is the node id when --id is not given: the hostname's first label.
func DefaultID() string {
	h, _ := os.Hostname()
	return mesh.NodeIDFromHostname(h)
}

// Parse parses args into fs, fills unset flags from env, and validates n.
func Parse(fs *flag.FlagSet, n *nodeconfig.Node, args []string, getenv func(string) string) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q (flags only; see -h)", fs.Arg(0))
	}
	if err := nodeconfig.ApplyEnv(fs, getenv); err != nil {
		return err
	}
	n.Given(fs)
	return n.Validate()
}

// Env is what a node needs to run.
type Env struct {
	Log   *slog.Logger
	NC    *nats.Conn
	JS    jetstream.JetStream
	Nodes jetstream.KeyValue
	// Config is bucket config, the cluster configuration nodes apply live.
	Config jetstream.KeyValue
	Reg    *prometheus.Registry
	http   net.Listener
	api    http.Handler // served under /api/ when set (masters)
	pprof  bool
	// node says whether the node's heartbeat is current; with the NATS
	// connection it is what /healthz reports.
	node func() error
}

// health is /healthz: connected to NATS, and the node's heartbeat stored
// within the bucket's TTL (so the mesh sees it online).
func (e *Env) health() error {
	if !e.NC.IsConnected() {
		return fmt.Errorf("not connected to NATS (%s)", e.NC.Status())
	}
	if e.node != nil {
		return e.node()
	}
	return nil
}

// Setup opens the HTTP listener, then joins the mesh (see [Join]).
func Setup(ctx context.Context, n *nodeconfig.Node, role string, stderr io.Writer) (*Env, error) {
	log := n.Logger(stderr).With("role", role)
	reg := metrics.NewRegistry()
	var ln net.Listener
	if n.HTTP != "" {
		var err error
		if ln, err = metrics.Listen("--http", n.HTTP); err != nil {
			return nil, err
		}
	}
	e, err := Join(ctx, n, role, log, reg)
	if err != nil {
		if ln != nil {
			_ = ln.Close()
		}
		return nil, err
	}
	e.http, e.pprof = ln, n.Pprof
	return e, nil
}

// Join connects node n to NATS and prepares the JetStream assets. A master
// applies every definition in streams/ (it owns the config); a worker only
// creates what is missing, so nodes with different flags never fight over
// settings. Connection metrics carry the node's id as label node.
func Join(ctx context.Context, n *nodeconfig.Node, role string, log *slog.Logger, reg *prometheus.Registry) (*Env, error) {
	e := &Env{Log: log, Reg: reg}
	r := prometheus.WrapRegistererWith(prometheus.Labels{"node": n.ID}, reg)
	n.NATS.Name = "crawlmesh-" + role + "-" + n.ID
	n.NATS.InboxPrefix = mesh.InboxPrefix(role)
	if role == mesh.RoleAgent {
		// A host agent runs with its workers' credentials (it hands them
		// down), so it reads replies where workers do.
		n.NATS.InboxPrefix = mesh.InboxPrefix(mesh.RoleWorker)
	}
	reconnects := prometheus.NewCounter(prometheus.CounterOpts{Name: "crawlmesh_nats_reconnects_total",
		Help: "Times this node reconnected to NATS."})
	if err := r.Register(reconnects); err != nil {
		return nil, fmt.Errorf("register metrics of node %s: %w", n.ID, err)
	}
	nc, js, err := natsconn.Dial(ctx, n.NATS, log, natsconn.Hooks{Reconnected: reconnects.Inc})
	if err != nil {
		return nil, err
	}
	e.NC, e.JS = nc, js
	_ = r.Register(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "crawlmesh_nats_connected",
		Help: "1 while this node is connected to NATS."}, func() float64 {
		if nc.IsConnected() {
			return 1
		}
		return 0
	}))
	defs, err := streams.Load()
	if err != nil {
		nc.Close()
		return nil, err
	}
	opts := StreamOptions(n, log)
	if role == mesh.RoleMaster {
		err := natsconn.UntilReady(ctx, log, "apply streams/", func(ctx context.Context) error {
			return streams.Setup(ctx, js, defs, opts, n.ID)
		})
		if err != nil {
			nc.Close()
			return nil, err
		}
	}
	// Workers wait for a master to create the buckets rather than create
	// them: assets are created once, by the master holding the setup
	// lease (streams.Setup), and never raced.
	var kv jetstream.KeyValue
	err = natsconn.UntilReady(ctx, log, "open bucket "+mesh.NodesBucket, func(ctx context.Context) error {
		kv, err = streams.WaitKV(ctx, js, mesh.NodesBucket)
		if _, missing := errors.AsType[*streams.MissingError](err); missing {
			return natsconn.Waiting(err)
		}
		return err
	})
	if err != nil {
		nc.Close()
		return nil, err
	}
	e.Nodes = kv
	err = natsconn.UntilReady(ctx, log, "open bucket "+mesh.ConfigBucket, func(ctx context.Context) error {
		e.Config, err = streams.WaitKV(ctx, js, mesh.ConfigBucket)
		if _, missing := errors.AsType[*streams.MissingError](err); missing {
			return natsconn.Waiting(err)
		}
		return err
	})
	if err != nil {
		nc.Close()
		return nil, err
	}
	if err := checkTTL(ctx, kv, n); err != nil {
		nc.Close()
		return nil, err
	}
	return e, nil
}

// checkTTL refuses a heartbeat interval the bucket's TTL cannot carry: the
// node would flap offline between beats.
func checkTTL(ctx context.Context, kv jetstream.KeyValue, n *nodeconfig.Node) error {
	st, err := kv.Status(ctx)
	if err != nil {
		return fmt.Errorf("kv %s status: %w", mesh.NodesBucket, err)
	}
	ttl := st.TTL()
	if ttl <= 0 {
		return fmt.Errorf("kv %s has no TTL, so dead nodes would never go offline: recreate it (a master applies streams/kv/nodes.json)", mesh.NodesBucket)
	}
	n.HeartbeatTTL = ttl // the bucket's TTL is the one that counts
	if n.HeartbeatInterval > ttl/2 {
		return fmt.Errorf("--heartbeat-interval %v is more than half of bucket %s's TTL %v: lower it, or raise the TTL with the master's --heartbeat-ttl", n.HeartbeatInterval, mesh.NodesBucket, ttl)
	}
	return nil
}

// Run serves HTTP and runs the node until it returns, then drains the NATS
// connection so pending publishes and replies go out.
func (e *Env) Run(ctx context.Context, run func(context.Context) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	var httpErr error
	if e.http != nil {
		e.Log.Debug("http listening", "addr", e.http.Addr().String())
		wg.Go(func() {
			mux := metrics.Mux(e.Reg, e.health)
			if e.api != nil {
				MountMaster(mux, e.api)
			}
			if e.pprof {
				metrics.MountPprof(mux)
			}
			if err := metrics.Serve(ctx, e.http, mux); err != nil {
				httpErr = err
				cancel()
			}
		})
	}
	err := run(ctx)
	cancel()
	wg.Wait()
	e.Drain()
	return errors.Join(err, httpErr)
}

// Drain flushes and closes the NATS connection, waiting at most 5s.
func (e *Env) Drain() {
	if e.NC == nil {
		return
	}
	done := make(chan struct{})
	e.NC.SetClosedHandler(func(*nats.Conn) { close(done) })
	if err := e.NC.Drain(); err != nil {
		e.NC.Close()
		return
	}
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		e.NC.Close()
	}
}

// ProtectEnv makes this process undumpable (see [Undumpable]), saying so
// on stderr when it cannot.
func ProtectEnv(name string) {
	if err := Undumpable(); err != nil {
		fmt.Fprintln(os.Stderr, name+": cannot protect the process's environment from other processes:", err)
	}
}

// Main runs a node binary: run gets a context cancelled by the first
// SIGINT/SIGTERM (a second exits at once); an error is printed as one line
// "name: error" and exits 1.
func Main(name string, run func(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error) {
	ProtectEnv(name)
	ctx, stop := signals.Context(context.Background())
	err := run(ctx, os.Args[1:], os.Getenv, os.Stderr)
	stop()
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, name+":", err)
		}
		os.Exit(1)
	}
}
