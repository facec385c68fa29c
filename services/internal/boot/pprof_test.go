package boot_test

import (
	"context"
	"flag"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/crawlmesh/crawlmesh/pkg/mesh"
	"github.com/crawlmesh/crawlmesh/pkg/nodeconfig"
	"github.com/crawlmesh/crawlmesh/services/internal/boot"
	"github.com/crawlmesh/crawlmesh/services/internal/harness"
	"github.com/crawlmesh/crawlmesh/streams"
)

// TestPprofIsOptIn: the profiler is on the --http address only with
// --pprof, and --pprof without an HTTP address is refused up front.
func TestPprofIsOptIn(t *testing.T) {
	nc := harness.StartCluster(t, 1, harness.InProcess)
	// Workers wait for a master's assets: create them as a master would.
	_, js := nc.Connect(t)
	if err := streams.Ensure(t.Context(), js, streams.MustLoad(), streams.Options{}); err != nil {
		t.Fatal(err)
	}
	for _, on := range []bool{false, true} {
		addr := "127.0.0.1:" + strconv.Itoa(harness.FreePort(t))
		n := node(nc.URL(), "w1", 0)
		n.HTTP, n.Pprof = addr, on
		ctx, cancel := context.WithCancel(t.Context())
		env, err := boot.Setup(ctx, n, mesh.RoleWorker, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- env.Run(ctx, func(ctx context.Context) error { <-ctx.Done(); return nil }) }()
		want := http.StatusNotFound
		if on {
			want = http.StatusOK
		}
		var status int
		harness.Eventually(t, 5*time.Second, "HTTP server answering", func() bool {
			resp, err := http.Get("http://" + addr + "/debug/pprof/cmdline")
			if err != nil {
				return false
			}
			resp.Body.Close()
			status = resp.StatusCode
			return true
		})
		if status != want {
			t.Errorf("--pprof=%v: /debug/pprof/cmdline answered %d, want %d", on, status, want)
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}

	var n nodeconfig.Node
	fs := flag.NewFlagSet("worker", flag.ContinueOnError)
	n.Register(fs, "w1", "127.0.0.1:8081")
	err := boot.Parse(fs, &n, []string{"--pprof", "--http", ""}, func(string) string { return "" })
	if err == nil || !strings.Contains(err.Error(), "--pprof") {
		t.Errorf("--pprof --http \"\": err %v, want one naming --pprof", err)
	}
}
