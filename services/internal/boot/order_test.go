package boot_test

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/crawlmesh/crawlmesh/pkg/mesh"
	"github.com/crawlmesh/crawlmesh/pkg/metrics"
	"github.com/crawlmesh/crawlmesh/services/internal/boot"
	"github.com/crawlmesh/crawlmesh/services/internal/harness"
	"github.com/crawlmesh/crawlmesh/streams"
)

// TestWorkerBeforeMaster: a worker started before any master creates no
// asset; it says it waits for a master and joins as soon as a master has
// created the assets.
func TestWorkerBeforeMaster(t *testing.T) {
	c := harness.StartCluster(t, 1, harness.InProcess)
	_, js := c.Connect(t)
	var lb logBuf
	joined := make(chan error, 1)
	go func() {
		env, err := boot.Join(t.Context(), node(c.URL(), "w1", 0), mesh.RoleWorker, slog.New(slog.NewTextHandler(&lb, nil)), metrics.NewRegistry())
		if err == nil {
			env.Drain()
		}
		joined <- err
	}()
	harness.Eventually(t, 10*time.Second, "worker says it waits for a master", func() bool {
		return strings.Contains(lb.String(), "waiting for a master to create the mesh's assets")
	})
	names := js.StreamNames(t.Context())
	for n := range names.Name() {
		t.Errorf("the worker created stream %s; only masters create assets", n)
	}
	select {
	case err := <-joined:
		t.Fatalf("worker joined before any asset existed: %v", err)
	default:
	}
	t0 := time.Now()
	if err := streams.Setup(t.Context(), js, streams.MustLoad(), streams.Options{}, "m1"); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-joined:
		if err != nil {
			t.Fatalf("worker Join: %v", err)
		}
		t.Logf("worker joined %v after the assets were created", time.Since(t0).Round(time.Millisecond))
	case <-time.After(5 * time.Second):
		t.Fatal("worker did not join within 5s of the assets being created")
	}
}
