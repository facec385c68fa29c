package harness

import (
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/crawlmesh/crawlmesh/pkg/mesh"
	"github.com/crawlmesh/crawlmesh/pkg/synthsite"
)

// TestSiteFaults: each fault reaches a plain HTTP client as advertised,
// and a page with Times n is served normally from request n+1 on.
func TestSiteFaults(t *testing.T) {
	s := NewSite(t, SiteConfig{Pages: 10, Faults: map[int]Fault{
		1: {Kind: Hang}, 2: {Kind: Reset}, 3: {Kind: Garbage}, 4: {Kind: Reset, Times: 1}}})
	get := func(i int) (int, error) {
		// A fresh connection each time: a reused one would be retried by
		// the transport on a reset.
		c := http.Client{Timeout: 300 * time.Millisecond, Transport: &http.Transport{DisableKeepAlives: true}}
		resp, err := c.Get(s.PageURL(i))
		if err != nil {
			return 0, err
		}
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, resp.Body)
		return resp.StatusCode, nil
	}
	if code, err := get(0); err != nil || code != 200 {
		t.Errorf("healthy page: %d %v", code, err)
	}
	var ne net.Error
	if _, err := get(1); !errors.As(err, &ne) || !ne.Timeout() {
		t.Errorf("hanging page: %v, want a client timeout", err)
	}
	if _, err := get(2); !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("reset page: %v, want ECONNRESET", err)
	}
	if _, err := get(3); err == nil || !strings.Contains(err.Error(), "malformed") {
		t.Errorf("garbage page: %v, want a malformed response", err)
	}
	if _, err := get(4); err == nil {
		t.Errorf("page 4 (reset once) answered the first request")
	}
	if code, err := get(4); err != nil || code != 200 {
		t.Errorf("page 4 second request: %d %v, want 200", code, err)
	}
	if h := s.Hits()["/p/4.html"]; h != 2 {
		t.Errorf("hits of page 4 = %d, want 2", h)
	}
}

// TestTruth: a dead page yields no item and hides pages reachable only
// through it; a page failing fewer times than the attempts is retried.
func TestTruth(t *testing.T) {
	cfg := synthsite.Config{Pages: 4, Links: 1} // 0 -> 1 -> 2 -> 3 -> 0
	s := &Site{URL: "http://x", cfg: SiteConfig{Pages: cfg.Pages, Links: cfg.Links,
		Faults: map[int]Fault{1: {Kind: Hang, Times: 1}, 2: {Kind: Reset}}}}
	tr := s.Truth(3)
	if len(tr.Items) != 2 || !tr.Items["Item 0|"+synthsite.Price(0)+"|/p/0.html"] || !tr.Items["Item 1|"+synthsite.Price(1)+"|/p/1.html"] {
		t.Errorf("items %v, want pages 0 and 1", tr.Items)
	}
	if len(tr.Dead) != 1 || !tr.Dead["http://x/p/2.html"] {
		t.Errorf("dead %v, want page 2", tr.Dead)
	}
	if len(tr.Retried) != 1 || !tr.Retried["http://x/p/1.html"] {
		t.Errorf("retried %v, want page 1", tr.Retried)
	}
	if tr = s.Truth(1); len(tr.Dead) != 1 || !tr.Dead["http://x/p/1.html"] {
		t.Errorf("with 1 attempt, dead %v: want page 1, failing once", tr.Dead)
	}
}

// TestCheckItemsNamesDifferences: lost, doubled and unexpected items are
// each named.
func TestCheckItemsNamesDifferences(t *testing.T) {
	it := func(n string) mesh.Item {
		return mesh.Item{URL: "http://h/p/" + n + ".html", Data: map[string]any{"name": "Item " + n, "price": "1"}}
	}
	want := map[string]bool{"Item 1|1|/p/1.html": true, "Item 2|1|/p/2.html": true}
	d := Compare("items", []string{ItemKey(it("1")), ItemKey(it("1")), ItemKey(it("3"))}, want)
	if d.OK() || len(d.Lost) != 1 || d.Lost[0] != "Item 2|1|/p/2.html" ||
		len(d.Doubled) != 1 || d.Doubled[0] != "Item 1|1|/p/1.html x2" ||
		len(d.Unexpected) != 1 || d.Unexpected[0] != "Item 3|1|/p/3.html" {
		t.Errorf("diff %+v", d)
	}
	if s := d.String(); !strings.Contains(s, "Item 2|1|/p/2.html") || !strings.Contains(s, "x2") {
		t.Errorf("diff text %q does not name the items", s)
	}
	if d := Compare("items", []string{"Item 1|1|/p/1.html", "Item 2|1|/p/2.html"}, want); !d.OK() {
		t.Errorf("equal sets differ: %v", d)
	}
}

// TestInProcessClusterRestart: a 3-node in-process cluster loses a server
// and gets it back on the same store and ports, R3 placeable again.
func TestInProcessClusterRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("3-node cluster")
	}
	c := StartCluster(t, 3, InProcess)
	_, js := c.Connect(t)
	kv, err := js.CreateKeyValue(t.Context(), kvConfig("probe"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(t.Context(), "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	c.Kill(1)
	c.Restart(1)
	c.WaitReady(60 * time.Second)
	if e, err := kv.Get(t.Context(), "k"); err != nil || string(e.Value()) != "v" {
		t.Errorf("value after a server restart: %v", err)
	}
	if got := c.URLs(); len(got) != 3 || c.Index(c.Name(2)) != 2 {
		t.Errorf("URLs %v, Index(%s) = %d", got, c.Name(2), c.Index(c.Name(2)))
	}
}

func kvConfig(name string) jetstream.KeyValueConfig {
	return jetstream.KeyValueConfig{Bucket: name, Replicas: 3}
}
