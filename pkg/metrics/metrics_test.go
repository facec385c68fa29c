package metrics_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/crawlmesh/crawlmesh/pkg/metrics"
)

// A server on loopback answers requests to a loopback host or localhost,
// and refuses a name of another's (DNS rebinding: a page that points
// attacker.example at 127.0.0.1 would read the open endpoints).
func TestServeLoopbackOnly(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		done <- metrics.Serve(ctx, ln, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "items") }))
	}()
	defer func() { cancel(); <-done }()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	for host, want := range map[string]int{
		"127.0.0.1:" + port:        http.StatusOK,
		"localhost:" + port:        http.StatusOK,
		"LOCALHOST":                http.StatusOK,
		"[::1]:" + port:            http.StatusOK,
		"127.0.0.2":                http.StatusOK,
		"attacker.example:" + port: http.StatusMisdirectedRequest,
		"10.0.0.1:" + port:         http.StatusMisdirectedRequest,
		"localhost.evil.example":   http.StatusMisdirectedRequest,
	} {
		req, _ := http.NewRequestWithContext(t.Context(), "GET", "http://"+ln.Addr().String()+"/api/v1/crawls", nil)
		req.Host = host
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("Host %s: %d %q, want %d", host, resp.StatusCode, b, want)
		}
		if want != http.StatusOK && strings.Contains(string(b), "items") {
			t.Errorf("Host %s: the refused request got the answer", host)
		}
	}
}
