package boot_test

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/crawlmesh/crawlmesh/pkg/mesh"
	"github.com/crawlmesh/crawlmesh/pkg/metrics"
	"github.com/crawlmesh/crawlmesh/pkg/natsconn"
	"github.com/crawlmesh/crawlmesh/pkg/nodeconfig"
	"github.com/crawlmesh/crawlmesh/services/internal/boot"
	"github.com/crawlmesh/crawlmesh/services/internal/harness"
	"github.com/crawlmesh/crawlmesh/streams"
	"github.com/crawlmesh/crawlmesh/streams/streamstest"
)

type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) { l.mu.Lock(); defer l.mu.Unlock(); return l.b.Write(p) }
func (l *logBuf) String() string              { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }

func node(url, id string, replicas int) *nodeconfig.Node {
	return &nodeconfig.Node{ID: id, HeartbeatInterval: time.Second, HeartbeatTTL: 3 * time.Second,
		LogLevel: "info", LogFormat: "text", Replicas: replicas,
		NATS: natsconn.Config{URL: url}}
}

// join runs boot.Join as a master would and returns what it logged.
func join(t *testing.T, url string, replicas int) string {
	t.Helper()
	var lb logBuf
	n := node(url, "m1", replicas)
	env, err := boot.Join(t.Context(), n, mesh.RoleMaster, slog.New(slog.NewTextHandler(&lb, nil)), metrics.NewRegistry())
	if err != nil {
		t.Fatalf("Join --replicas %d: %v", replicas, err)
	}
	env.Drain()
	return lb.String()
}

// replicaCounts maps each asset's stream to its replica count.
func replicaCounts(t *testing.T, js jetstream.JetStream) map[string]int {
	t.Helper()
	return streamstest.Replicas(t, js, streams.MustLoad())
}

func all(m map[string]int, want int) bool {
	for _, r := range m {
		if r != want {
			return false
		}
	}
	return len(m) > 0
}

// TestJoinAutoReplicas: a master with --replicas 0 makes every asset R1 on
// one server (what `crawlmesh up` runs) and R3 on a 3-node cluster, and
// says so in its log.
func TestJoinAutoReplicas(t *testing.T) {
	if testing.Short() {
		t.Skip("JetStream clusters")
	}
	one := harness.StartCluster(t, 1, harness.InProcess)
	log := join(t, one.URL(), 0)
	_, js := one.Connect(t)
	if got := replicaCounts(t, js); !all(got, 1) {
		t.Errorf("one server: replicas %v, want 1 everywhere", got)
	}
	if !strings.Contains(log, "jetstream replicas: 1") {
		t.Errorf("one server: decision not logged:\n%s", log)
	}

	three := harness.StartCluster(t, 3, harness.InProcess)
	log = join(t, three.URL(), 0)
	_, js = three.Connect(t)
	if got := replicaCounts(t, js); !all(got, 3) {
		t.Errorf("3 servers: replicas %v, want 3 everywhere", got)
	}
	if !strings.Contains(log, "on 3 servers") {
		t.Errorf("3 servers: decision not logged:\n%s", log)
	}
}

// TestJoinScalesUpR1Assets: assets created at R1 (--replicas 1) become R3
// when a master joins with --replicas 3 or auto, and KeepReplicas does it
// too while leading, never while not.
func TestJoinScalesUpR1Assets(t *testing.T) {
	if testing.Short() {
		t.Skip("JetStream clusters")
	}
	c := harness.StartCluster(t, 3, harness.InProcess)
	_, js := c.Connect(t)
	reset := func() {
		t.Helper()
		d := streams.MustLoad()
		for _, k := range d.KV {
			_ = js.DeleteKeyValue(t.Context(), k.Bucket)
		}
		for _, s := range d.Streams {
			_ = js.DeleteStream(t.Context(), s.Name)
		}
		join(t, c.URL(), 1)
		if got := replicaCounts(t, js); !all(got, 1) {
			t.Fatalf("--replicas 1: %v", got)
		}
	}
	for _, replicas := range []int{3, 0} {
		reset()
		log := join(t, c.URL(), replicas)
		if got := replicaCounts(t, js); !all(got, 3) {
			t.Errorf("join with --replicas %d over R1 assets: %v, want 3 everywhere", replicas, got)
		}
		if !strings.Contains(log, "asset scaled up") && !strings.Contains(log, "asset replicas changed") {
			t.Errorf("--replicas %d: scale-up not logged:\n%s", replicas, log)
		}
	}

	reset()
	var lb logBuf
	n := node(c.URL(), "m1", 0)
	ctx, cancel := context.WithCancel(t.Context())
	var leading sync.Mutex
	lead := false
	done := make(chan struct{})
	go func() {
		defer close(done)
		boot.KeepReplicas(ctx, js, n, slog.New(slog.NewTextHandler(&lb, nil)), func() bool {
			leading.Lock()
			defer leading.Unlock()
			return lead
		}, 100*time.Millisecond)
	}()
	time.Sleep(time.Second) // ten checks as a standby
	if got := replicaCounts(t, js); !all(got, 1) {
		t.Errorf("a standby scaled assets: %v", got)
	}
	leading.Lock()
	lead = true
	leading.Unlock()
	harness.Eventually(t, 30*time.Second, "every asset R3 once leading", func() bool {
		return all(replicaCounts(t, js), 3)
	})
	cancel()
	<-done
	if !strings.Contains(lb.String(), "asset scaled up") {
		t.Errorf("KeepReplicas did not log the scale-up:\n%s", lb.String())
	}
}
