package harness

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/crawlmesh/crawlmesh/pkg/crawlctl"
	"github.com/crawlmesh/crawlmesh/pkg/election"
	"github.com/crawlmesh/crawlmesh/pkg/mesh"
)

// MeshConfig shapes a [Mesh]; zero values take the defaults in brackets.
type MeshConfig struct {
	NATS    int  // servers [1]
	Mode    Mode // how they run [InProcess]
	Masters int  // master processes m1.. [1]
	Workers int  // worker processes w1.. [2]
	// AckWait is the masters' --task-ack-wait [3s]: how soon a dead or
	// frozen worker's tasks go to another.
	AckWait time.Duration
	// Lease is the masters' --lease [the file's, 3s].
	Lease time.Duration
	// Concurrency, RequestTimeout and MaxAttempts are the workers' flags
	// [4, 2s, 3].
	Concurrency    int
	RequestTimeout time.Duration
	MaxAttempts    int
	// Partitions is informational: the partitions the masters were asked
	// for in MasterArgs (tests use it to shape their specs).
	Partitions int
	// MasterArgs and WorkerArgs are appended to each process's flags.
	MasterArgs, WorkerArgs []string
	// WorkerEnv ("NAME=value") is added to each worker's environment:
	// the secrets a spec reads with ${env:NAME}, say.
	WorkerEnv []string
	// HTTP gives every master and worker --http on a free loopback port
	// (Mesh.HTTP has the addresses) instead of none.
	HTTP bool
	// Together starts every master and worker at the same moment, as soon
	// as the servers accept connections (before JetStream has a meta
	// leader), and returns without waiting for them: a whole site coming
	// back at once. Mesh.Started is that moment. The servers are first
	// given a meta leader (a fresh, ready cluster) unless
	// TogetherBeforeMeta is set.
	Together, TogetherBeforeMeta bool
}

func (c *MeshConfig) defaults() {
	if c.NATS == 0 {
		c.NATS = 1
	}
	if c.Masters == 0 {
		c.Masters = 1
	}
	if c.Workers == 0 {
		c.Workers = 2
	}
	if c.AckWait == 0 {
		c.AckWait = 3 * time.Second
	}
	if c.Concurrency == 0 {
		c.Concurrency = 4
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = 2 * time.Second
	}
	if c.MaxAttempts == 0 {
		c.MaxAttempts = 3
	}
}

// Mesh is a NATS cluster with master and worker processes, a CLI and a
// client connection of the test's own.
type Mesh struct {
	T       testing.TB
	Cfg     MeshConfig
	Cluster *Cluster
	Masters []*Proc
	Workers []*Proc
	CLI     *CLI
	NC      *nats.Conn
	JS      jetstream.JetStream
	// Started is when the masters and workers were started.
	Started time.Time
	// HTTP maps a node id to its --http address (MeshConfig.HTTP).
	HTTP map[string]string
}

// StartMesh starts the cluster, then the masters and workers, and waits
// until every node's heartbeat is in.
func StartMesh(t testing.TB, cfg MeshConfig) *Mesh {
	t.Helper()
	cfg.defaults()
	Bins(t)
	t0 := time.Now()
	m := &Mesh{T: t, Cfg: cfg, HTTP: map[string]string{}}
	if cfg.Together && cfg.TogetherBeforeMeta {
		m.Cluster = StartClusterCold(t, cfg.NATS, cfg.Mode)
	} else {
		m.Cluster = StartCluster(t, cfg.NATS, cfg.Mode)
	}
	m.NC, m.JS = m.Cluster.Connect(t)
	m.CLI = NewCLI(t, m.Cluster.URL())
	if cfg.Together {
		m.startTogether()
		return m
	}
	var ids []string
	for i := range cfg.Masters {
		id := "m" + strconv.Itoa(i+1)
		m.Masters = append(m.Masters, m.StartMaster(id))
		ids = append(ids, id)
	}
	// Workers wait for a master's streams; start them after the first
	// master is up so start-up order is not part of every test.
	m.WaitOnline(30*time.Second, ids...)
	for i := range cfg.Workers {
		id := "w" + strconv.Itoa(i+1)
		m.Workers = append(m.Workers, m.StartWorker(id))
		ids = append(ids, id)
	}
	m.WaitOnline(30*time.Second, ids...)
	t.Logf("harness: mesh up in %v: %d NATS, masters and workers %v", time.Since(t0).Round(time.Millisecond), cfg.NATS, ids)
	return m
}

// startTogether starts every master and worker at once.
func (m *Mesh) startTogether() {
	m.T.Helper()
	// exec takes a millisecond or two per process: started in a row, they
	// meet the cluster at the same moment for all practical purposes.
	m.Started = time.Now()
	for i := range m.Cfg.Masters {
		m.Masters = append(m.Masters, m.StartMaster("m"+strconv.Itoa(i+1)))
	}
	for i := range m.Cfg.Workers {
		m.Workers = append(m.Workers, m.StartWorker("w"+strconv.Itoa(i+1)))
	}
}

// StartMaster starts a master process with id.
func (m *Mesh) StartMaster(id string) *Proc {
	m.T.Helper()
	args := []string{"--nats", m.Cluster.URL(), "--id", id, "--http", m.httpAddr(id), "--task-ack-wait", m.Cfg.AckWait.String()}
	if m.Cfg.Lease > 0 {
		args = append(args, "--lease", m.Cfg.Lease.String())
	}
	return StartProc(m.T, "master "+id, "master", append(args, m.Cfg.MasterArgs...)...)
}

// StartWorker starts a worker process with id.
func (m *Mesh) StartWorker(id string) *Proc {
	m.T.Helper()
	return m.StartWorkerEnv(id, m.Cfg.WorkerEnv)
}

// StartWorkerEnv starts a worker process with id and env ("NAME=value")
// added to its environment instead of MeshConfig.WorkerEnv.
func (m *Mesh) StartWorkerEnv(id string, env []string) *Proc {
	m.T.Helper()
	args := []string{"--nats", m.Cluster.URL(), "--id", id, "--http", m.httpAddr(id),
		"--concurrency", strconv.Itoa(m.Cfg.Concurrency), "--request-timeout", m.Cfg.RequestTimeout.String(),
		"--max-attempts", strconv.Itoa(m.Cfg.MaxAttempts)}
	return StartProcEnv(m.T, env, "worker "+id, "worker", append(args, m.Cfg.WorkerArgs...)...)
}

// httpAddr is node id's --http value: "" (none) unless MeshConfig.HTTP,
// then a free loopback port, the same on every start of id.
func (m *Mesh) httpAddr(id string) string {
	if !m.Cfg.HTTP {
		return ""
	}
	if m.HTTP == nil {
		m.HTTP = map[string]string{}
	}
	if a, ok := m.HTTP[id]; ok {
		return a
	}
	a := "127.0.0.1:" + strconv.Itoa(FreePort(m.T))
	m.HTTP[id] = a
	return a
}

// Slots is the number of tasks all workers together hold at most.
func (m *Mesh) Slots() int { return len(m.Workers) * m.Cfg.Concurrency }

func (m *Mesh) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 3*time.Second)
}

// Online reports which of ids have a heartbeat key.
func (m *Mesh) Online(ids ...string) map[string]bool {
	ctx, cancel := m.ctx()
	defer cancel()
	out := map[string]bool{}
	kv, err := m.JS.KeyValue(ctx, mesh.NodesBucket)
	if err != nil {
		return out
	}
	for _, id := range ids {
		if _, err := kv.Get(ctx, id); err == nil {
			out[id] = true
		}
	}
	return out
}

// Heartbeat reads node id's last heartbeat.
func (m *Mesh) Heartbeat(id string) (mesh.Heartbeat, error) {
	ctx, cancel := m.ctx()
	defer cancel()
	kv, err := m.JS.KeyValue(ctx, mesh.NodesBucket)
	if err != nil {
		return mesh.Heartbeat{}, err
	}
	e, err := kv.Get(ctx, id)
	if err != nil {
		return mesh.Heartbeat{}, err
	}
	var hb mesh.Heartbeat
	if err := json.Unmarshal(e.Value(), &hb); err != nil {
		return mesh.Heartbeat{}, fmt.Errorf("heartbeat of %s: %w", id, err)
	}
	return hb, nil
}

// WaitOnline waits until every id has a heartbeat key.
func (m *Mesh) WaitOnline(timeout time.Duration, ids ...string) {
	m.T.Helper()
	var on map[string]bool
	Eventually(m.T, timeout, fmt.Sprintf("nodes %v online", ids), func() bool {
		on = m.Online(ids...)
		return len(on) == len(ids)
	}, func() string { return fmt.Sprintf("online: %v", on) })
}

// Leader is the holder of the election key ("" and an error while none
// can be read).
func (m *Mesh) Leader() (election.Leader, error) {
	ctx, cancel := m.ctx()
	defer cancel()
	kv, err := m.JS.KeyValue(ctx, mesh.ElectionBucket)
	if err != nil {
		return election.Leader{}, err
	}
	e, err := kv.Get(ctx, election.Key)
	if err != nil {
		return election.Leader{}, err
	}
	var l election.Leader
	if err := json.Unmarshal(e.Value(), &l); err != nil {
		return election.Leader{}, fmt.Errorf("election key: %w", err)
	}
	if l.Term == 0 {
		l.Term = e.Revision()
	}
	return l, nil
}

// WaitLeader waits for a leader other than not ("" for any) and returns it.
func (m *Mesh) WaitLeader(timeout time.Duration, not string) election.Leader {
	m.T.Helper()
	var l election.Leader
	var err error
	Eventually(m.T, timeout, "a leading master other than "+strconv.Quote(not), func() bool {
		l, err = m.Leader()
		return err == nil && l.ID != "" && l.ID != not
	}, func() string { return fmt.Sprintf("leader %+v, %v", l, err) })
	return l
}

// Master returns the master process with id.
func (m *Mesh) Master(id string) *Proc {
	for _, p := range m.Masters {
		if p.Name() == "master "+id {
			return p
		}
	}
	m.T.Fatalf("harness: no master %s", id)
	return nil
}

// Status reads a crawl's status through the test's own connection.
func (m *Mesh) Status(id string) (crawlctl.Status, error) {
	ctx, cancel := m.ctx()
	defer cancel()
	kv, err := m.JS.KeyValue(ctx, mesh.CrawlsBucket)
	if err != nil {
		return crawlctl.Status{}, err
	}
	return crawlctl.ReadStatus(ctx, m.JS, kv, id)
}

// WaitPages waits until the crawl has at least n pages done (ok, failed
// or dead), reading through faults (a read that fails is retried).
func (m *Mesh) WaitPages(id string, n int64, timeout time.Duration) crawlctl.Status {
	m.T.Helper()
	var st crawlctl.Status
	var err error
	Eventually(m.T, timeout, fmt.Sprintf("crawl %s: %d pages done", id, n), func() bool {
		st, err = m.Status(id)
		return err == nil && st.PagesOK+st.PagesFailed+st.Dead >= n
	}, func() string { return fmt.Sprintf("last status %+v, %v", st, err) })
	return st
}

// WaitDone waits until the crawl is no longer running and returns its
// final status; the test fails unless it completed.
func (m *Mesh) WaitDone(id string, timeout time.Duration) crawlctl.Status {
	m.T.Helper()
	var st crawlctl.Status
	var err error
	Eventually(m.T, timeout, "crawl "+id+" finished", func() bool {
		st, err = m.Status(id)
		return err == nil && st.State != mesh.CrawlRunning
	}, func() string { return fmt.Sprintf("last status %+v, %v", st, err) })
	if st.State != mesh.CrawlCompleted {
		m.T.Fatalf("harness: crawl %s ended %s: %+v", id, st.State, st)
	}
	return st
}

// DeadLetters returns the URL of every task of the crawl in the dead
// letters, once per dead letter.
func (m *Mesh) DeadLetters(id string) []string {
	m.T.Helper()
	// Right after a server restart the stream may still be electing its
	// leader: ask again until it answers.
	var dl []crawlctl.DeadLetter
	var last error
	Eventually(m.T, 60*time.Second, "dead letters of "+id+" readable", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		dl, last = crawlctl.ReadDeadLetters(ctx, m.JS, id)
		return last == nil
	}, func() string { return fmt.Sprint(last) })
	urls := make([]string, 0, len(dl))
	for _, d := range dl {
		urls = append(urls, d.URL)
	}
	return urls
}

// Outcome is one fault case's result, for the report table.
type Outcome struct {
	Fault    string
	Survived bool
	Items    Diff
	Recovery time.Duration
	Note     string
}

func (o Outcome) String() string {
	yes := "no"
	if o.Survived {
		yes = "yes"
	}
	return fmt.Sprintf("| %s | %s | %s | %v | %s |", o.Fault, yes, o.Items.Short(), o.Recovery.Round(10*time.Millisecond), o.Note)
}
