package harness

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Mode says how the cluster's servers run.
type Mode int

const (
	// InProcess runs each server inside the test binary. Kill is then a
	// clean Shutdown (a goroutine cannot be SIGKILLed) and Freeze is
	// refused.
	InProcess Mode = iota
	// Processes runs each server as a nats-server process built by [Bins]:
	// Kill is SIGKILL, Freeze is SIGSTOP.
	Processes
)

// Cluster is 1 or more nats-server nodes with JetStream on loopback; with
// more than one they form one cluster (routes between all of them).
type Cluster struct {
	t     testing.TB
	mode  Mode
	nodes []*node
}

type node struct {
	name        string
	port, route int
	store       string
	conf        string // Processes: the config file
	srv         *server.Server
	proc        *Proc
	opts        func() *server.Options
}

// FreePort returns a loopback TCP port that was free a moment ago. It is
// drawn below the kernel's ephemeral range: a port from that range (what
// listening on :0 gives) can be taken by any outgoing connection between
// now and the moment a server process binds it, which made servers of
// busy test runs fail with "address already in use".
func FreePort(t testing.TB) int {
	t.Helper()
	lo := ephemeralLow()
	for range 200 {
		port := 10000 + rand.IntN(lo-10000)
		ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
		if err == nil {
			ln.Close()
			return port
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("harness: free port: %v", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// ephemeralLow is the first port of the kernel's ephemeral range (Linux's
// default when it cannot be read).
func ephemeralLow() int {
	lo := 32768
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if v, err := strconv.Atoi(f[0]); err == nil && v > 11000 {
				lo = v
			}
		}
	}
	return lo
}

// StartCluster starts n servers and waits until JetStream is ready: a
// meta leader, and with 3 or more servers, room for a 3-replica stream.
func StartCluster(t testing.TB, n int, mode Mode) *Cluster {
	t.Helper()
	c := StartClusterCold(t, n, mode)
	c.WaitReady(60 * time.Second)
	return c
}

// StartClusterCold starts n servers and returns as soon as each accepts
// connections, before JetStream has a meta leader: what masters and
// workers meet when a whole site starts at once.
func StartClusterCold(t testing.TB, n int, mode Mode) *Cluster {
	t.Helper()
	if n < 1 {
		t.Fatalf("harness: cluster of %d servers", n)
	}
	if mode == Processes {
		Bins(t)
	}
	c := &Cluster{t: t, mode: mode}
	var routes []string
	for i := range n {
		nd := &node{name: "n" + strconv.Itoa(i+1), port: FreePort(t), store: filepath.Join(t.TempDir(), "js")}
		if n > 1 {
			nd.route = FreePort(t)
			routes = append(routes, "nats-route://127.0.0.1:"+strconv.Itoa(nd.route))
		}
		c.nodes = append(c.nodes, nd)
	}
	for _, nd := range c.nodes {
		c.prepare(nd, routes)
		c.startNode(nd)
	}
	return c
}

func (c *Cluster) prepare(nd *node, routes []string) {
	if c.mode == InProcess {
		nd.opts = func() *server.Options {
			o := &server.Options{ServerName: nd.name, Host: "127.0.0.1", Port: nd.port, NoLog: true, NoSigs: true,
				JetStream: true, StoreDir: nd.store}
			if len(routes) > 0 {
				o.Cluster = server.ClusterOpts{Name: "harness", Host: "127.0.0.1", Port: nd.route}
				o.Routes = server.RoutesFromStr(strings.Join(routes, ","))
			}
			return o
		}
		return
	}
	conf := fmt.Sprintf("server_name: %s\nlisten: \"127.0.0.1:%d\"\njetstream {\n  store_dir: %q\n}\n", nd.name, nd.port, nd.store)
	if len(routes) > 0 {
		conf += fmt.Sprintf("cluster {\n  name: harness\n  listen: \"127.0.0.1:%d\"\n  routes: [%s]\n}\n",
			nd.route, `"`+strings.Join(routes, `", "`)+`"`)
	}
	nd.conf = filepath.Join(c.t.TempDir(), nd.name+".conf")
	if err := os.WriteFile(nd.conf, []byte(conf), 0o644); err != nil {
		c.t.Fatalf("harness: write %s: %v", nd.conf, err)
	}
}

func (c *Cluster) startNode(nd *node) {
	c.t.Helper()
	if c.mode == InProcess {
		s, err := server.NewServer(nd.opts())
		if err != nil {
			c.t.Fatalf("harness: nats-server %s: %v", nd.name, err)
		}
		go s.Start()
		if !s.ReadyForConnections(15 * time.Second) {
			c.t.Fatalf("harness: nats-server %s not accepting connections within 15s", nd.name)
		}
		if nd.srv == nil {
			c.t.Cleanup(func() {
				if nd.srv != nil {
					nd.srv.Shutdown()
					nd.srv.WaitForShutdown()
				}
			})
		}
		nd.srv = s
		return
	}
	if nd.proc == nil {
		nd.proc = StartProc(c.t, "nats-server "+nd.name, "nats-server", "-c", nd.conf)
	} else {
		nd.proc.Restart()
	}
	addr := "127.0.0.1:" + strconv.Itoa(nd.port)
	Eventually(c.t, 15*time.Second, "nats-server "+nd.name+" accepting connections on "+addr, func() bool {
		conn, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			_ = conn.Close()
		}
		return err == nil
	})
}

// Size is the number of servers.
func (c *Cluster) Size() int { return len(c.nodes) }

// Name is server i's name (n1, n2, ...), as JetStream reports it.
func (c *Cluster) Name(i int) string { return c.nodes[i].name }

// Index is the index of the server named name, -1 if none.
func (c *Cluster) Index(name string) int {
	for i, nd := range c.nodes {
		if nd.name == name {
			return i
		}
	}
	return -1
}

// URLs are the client URLs of every server.
func (c *Cluster) URLs() []string {
	var u []string
	for _, nd := range c.nodes {
		u = append(u, "nats://127.0.0.1:"+strconv.Itoa(nd.port))
	}
	return u
}

// URL is every client URL, comma-separated, as --nats takes them.
func (c *Cluster) URL() string { return strings.Join(c.URLs(), ",") }

// Kill stops server i at once: SIGKILL for a process, Shutdown in process.
func (c *Cluster) Kill(i int) {
	c.t.Helper()
	nd := c.nodes[i]
	if c.mode == InProcess {
		nd.srv.Shutdown()
		nd.srv.WaitForShutdown()
		return
	}
	nd.proc.Kill()
}

// Freeze stops server i with SIGSTOP (processes only).
func (c *Cluster) Freeze(i int) {
	c.t.Helper()
	if c.mode == InProcess {
		c.t.Fatal("harness: an in-process server cannot be frozen; use Processes")
	}
	c.nodes[i].proc.Freeze()
}

// Thaw resumes a frozen server with SIGCONT.
func (c *Cluster) Thaw(i int) {
	c.t.Helper()
	if c.mode == InProcess {
		c.t.Fatal("harness: an in-process server cannot be frozen; use Processes")
	}
	c.nodes[i].proc.Thaw()
}

// Restart starts server i again with the same name, ports and store (after
// killing it if it still runs) and waits until it accepts connections.
func (c *Cluster) Restart(i int) {
	c.t.Helper()
	nd := c.nodes[i]
	if c.mode == InProcess {
		if nd.srv.Running() {
			c.Kill(i)
		}
	}
	c.startNode(nd)
}

// Proc is server i's process (nil in process).
func (c *Cluster) Proc(i int) *Proc { return c.nodes[i].proc }

// Connect opens a client connection to every server that reconnects
// forever, and its JetStream context; both close when the test ends.
func (c *Cluster) Connect(t testing.TB) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc, err := nats.Connect(c.URL(), nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond),
		nats.Timeout(2*time.Second))
	if err != nil {
		t.Fatalf("harness: connect %s: %v", c.URL(), err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatalf("harness: jetstream: %v", err)
	}
	return nc, js
}

// WaitReady waits until JetStream answers, every existing stream has a
// leader, and (3 or more servers) a 3-replica stream can be placed. After
// a restart of every server this is when masters can start.
func (c *Cluster) WaitReady(timeout time.Duration) {
	c.t.Helper()
	nc, err := nats.Connect(c.URL(), nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
	if err != nil {
		c.t.Fatalf("harness: connect %s: %v", c.URL(), err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	var last error
	Eventually(c.t, timeout, "JetStream ready", func() bool {
		last = c.ready(js)
		return last == nil
	}, func() string { return fmt.Sprint(last) })
}

func (c *Cluster) ready(js jetstream.JetStream) error {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if _, err := js.AccountInfo(ctx); err != nil {
		return fmt.Errorf("account info: %w", err)
	}
	names := js.StreamNames(ctx)
	for n := range names.Name() {
		s, err := js.Stream(ctx, n)
		if err != nil {
			return fmt.Errorf("stream %s: %w", n, err)
		}
		if ci := s.CachedInfo().Cluster; ci != nil && ci.Leader == "" {
			return fmt.Errorf("stream %s has no leader", n)
		}
	}
	if err := names.Err(); err != nil {
		return fmt.Errorf("stream names: %w", err)
	}
	if len(c.nodes) < 3 {
		return nil
	}
	const probe = "HARNESS_PROBE"
	_, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: probe, Subjects: []string{"harness.probe"},
		Replicas: 3, Storage: jetstream.MemoryStorage})
	if err != nil && !errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
		return fmt.Errorf("3-replica probe stream: %w", err)
	}
	if err := js.DeleteStream(ctx, probe); err != nil {
		return fmt.Errorf("delete probe stream: %w", err)
	}
	return nil
}

// WaitAnswering waits until JetStream answers an account info request
// (the cluster has a meta leader) and returns when it first did.
func (c *Cluster) WaitAnswering(timeout time.Duration) time.Time {
	c.t.Helper()
	nc, err := nats.Connect(c.URL(), nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
	if err != nil {
		c.t.Fatalf("harness: connect %s: %v", c.URL(), err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	var last error
	Eventually(c.t, timeout, "JetStream answering", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 250*time.Millisecond)
		defer cancel()
		_, last = js.AccountInfo(ctx)
		return last == nil
	}, func() string { return fmt.Sprint(last) })
	return time.Now()
}

// StreamLeader is the server index leading stream name, -1 if unknown.
func (c *Cluster) StreamLeader(js jetstream.JetStream, name string) int {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, name)
	if err != nil {
		return -1
	}
	ci := s.CachedInfo().Cluster
	if ci == nil {
		return 0 // a single server leads everything
	}
	return c.Index(ci.Leader)
}
