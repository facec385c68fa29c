package streams_test

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/crawlmesh/crawlmesh/pkg/natsconn"
	"github.com/crawlmesh/crawlmesh/pkg/natstest"
	"github.com/crawlmesh/crawlmesh/streams"
)

// TestSetupTogetherOnACluster: three masters apply streams/ at the same
// moment on a 3-node cluster; one creates the assets, the others wait and
// verify, and every one is done within seconds — not 30 s per asset as
// when their creates raced.
func TestSetupTogetherOnACluster(t *testing.T) {
	if testing.Short() {
		t.Skip("3-node cluster")
	}
	_, js := cluster(t, 3, 0)
	d := load(t)
	o := streams.Options{Replicas: streams.ReplicasAuto}
	var wg sync.WaitGroup
	var lb logBuf
	took := make([]time.Duration, 3)
	errs := make([]error, 3)
	for i := range 3 {
		wg.Go(func() {
			o := o
			o.Log = slog.New(slog.NewTextHandler(&lb, nil)).With("m", i)
			t0 := time.Now()
			ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
			defer cancel()
			// As a master runs it (services/internal/boot): retried while
			// JetStream cannot answer.
			errs[i] = natsconn.UntilReady(ctx, o.Log, "apply streams/", func(ctx context.Context) error {
				return streams.Setup(ctx, js, d, o, "m"+string(rune('1'+i)))
			})
			took[i] = time.Since(t0)
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("master m%d: %v", i+1, err)
		}
		if took[i] > 20*time.Second {
			t.Errorf("master m%d took %v to set up", i+1, took[i])
		}
	}
	t.Logf("set up in %v", took)
	if n := strings.Count(lb.String(), "waiting for the mesh's assets"); n == 0 {
		t.Errorf("no master waited for another's assets: the setups overlapped\n%s", lb.String())
	}
	wantAll(t, replicas(t, js, d), 3)
	if holder, err := streams.SetupHolder(t.Context(), js); err != nil || holder != "" {
		t.Errorf("setup lease after every master finished: %q, %v; want it given back", holder, err)
	}
}

// TestSetupLeaseOfADeadMaster: a master that died holding the setup lease
// holds up the next one for at most the lease (the bucket's TTL).
func TestSetupLeaseOfADeadMaster(t *testing.T) {
	s := natstest.RunServer(t)
	_, js := natstest.Connect(t, s)
	d := load(t)
	o := streams.Options{Lease: 2 * time.Second}
	kv, err := streams.OpenKV(t.Context(), js, d, "election", o)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Create(t.Context(), streams.SetupKey, []byte("dead")); err != nil {
		t.Fatal(err)
	}
	if h, _ := streams.SetupHolder(t.Context(), js); h != "dead" {
		t.Fatalf("SetupHolder = %q, want dead", h)
	}
	t0 := time.Now()
	if err := streams.Setup(t.Context(), js, d, o, "m2"); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(t0); took > 2*time.Second+2*time.Second {
		t.Errorf("setup took %v after a dead master's lease of 2s", took)
	} else {
		t.Logf("set up %v after the dead master's lease", took.Round(time.Millisecond))
	}
	if _, err := js.Stream(t.Context(), "TASKS"); err != nil {
		t.Errorf("TASKS after setup: %v", err)
	}
	var _ jetstream.KeyValue = kv
}

// TestSetupEnded: once a master has applied streams/ and given the lease
// back, SetupEnded says so, with the time since; before any setup it says
// nothing ended.
func TestSetupEnded(t *testing.T) {
	s := natstest.RunServer(t)
	_, js := natstest.Connect(t, s)
	if _, ended, _ := streams.SetupEnded(t.Context(), js); ended {
		t.Fatal("SetupEnded before any setup says it ended")
	}
	if err := streams.Setup(t.Context(), js, load(t), streams.Options{}, "m1"); err != nil {
		t.Fatal(err)
	}
	ago, ended, err := streams.SetupEnded(t.Context(), js)
	if err != nil || !ended || ago < 0 || ago > 10*time.Second {
		t.Fatalf("SetupEnded after a setup = %v, %v, %v; want ended moments ago", ago, ended, err)
	}
}
