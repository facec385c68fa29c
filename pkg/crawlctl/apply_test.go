package crawlctl_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/crawlmesh/crawlmesh/pkg/clusterview"
	"github.com/crawlmesh/crawlmesh/pkg/crawlctl"
	"github.com/crawlmesh/crawlmesh/pkg/mesh"
	"github.com/crawlmesh/crawlmesh/pkg/spec"
	"github.com/crawlmesh/crawlmesh/streams"
	"github.com/crawlmesh/crawlmesh/streams/streamstest"
)

// TestApplySpider: re-applying an unchanged spec writes nothing (its
// @every schedule keeps its anchor, the entry's time); a changed one is
// written; a spec too large for one NATS message says what to do instead
// of "maximum payload exceeded" (both found by review).
func TestApplySpider(t *testing.T) {
	_, js := streamstest.Start(t, streams.Options{})
	kv := streamstest.Bucket(t, js, mesh.SpidersBucket)
	parse := func(src string) *spec.Spec {
		t.Helper()
		s, err := spec.Parse([]byte(src))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	const src = "name: s\nstart_urls: [https://example.com/]\nschedule: '@every 30s'\n"
	rev1, changed, err := crawlctl.ApplySpider(t.Context(), kv, parse(src))
	if err != nil || !changed {
		t.Fatalf("first apply: rev %d, changed %v, %v", rev1, changed, err)
	}
	e1, _ := kv.Get(t.Context(), "s")
	rev2, changed, err := crawlctl.ApplySpider(t.Context(), kv, parse(src))
	if err != nil || changed || rev2 != rev1 {
		t.Errorf("same spec again: rev %d (first %d), changed %v, %v; want unchanged", rev2, rev1, changed, err)
	}
	if e2, _ := kv.Get(t.Context(), "s"); !e2.Created().Equal(e1.Created()) {
		t.Errorf("entry time moved from %v to %v: the schedule's anchor with it", e1.Created(), e2.Created())
	}
	rev3, changed, err := crawlctl.ApplySpider(t.Context(), kv, parse(strings.Replace(src, "30s", "1m", 1)))
	if err != nil || !changed || rev3 <= rev1 {
		t.Errorf("changed spec: rev %d, changed %v, %v; want a new revision", rev3, changed, err)
	}

	var b strings.Builder
	b.WriteString("name: big\nstart_urls:\n")
	for i := range 30000 {
		fmt.Fprintf(&b, "  - https://example.com/products/item-%06d?ref=catalogue\n", i)
	}
	_, _, err = crawlctl.ApplySpider(t.Context(), kv, parse(b.String()))
	if err == nil || !strings.Contains(err.Error(), "max_payload") || !strings.Contains(err.Error(), "--seeds-file") {
		t.Errorf("a spec over max_payload: %v; want the limit named and seeds files suggested", err)
	}
}

// A spider stored before start URLs matching links.deny were refused
// starts from its other start URLs, the denied one logged as skipped (it
// is never requested); with nothing else to crawl, crawl start says so.
func TestStoredDeniedStartURL(t *testing.T) {
	e := newEnv(t, `name: t
start_urls: ["http://127.0.0.1:1/a", "http://127.0.0.1:1/cart"]
links: {deny: ["/cart"]}
`)
	id, err := e.ctl.Start(t.Context(), "t")
	if err != nil {
		t.Fatal(err)
	}
	if q := e.queued(t, id); len(q) != 1 || q[0].URL != "http://127.0.0.1:1/a" {
		t.Errorf("queued %+v, want /a alone", q)
	}
	logs := readLogs(t, e.js, id)
	if len(logs) != 1 || logs[0].Error != `start URL http://127.0.0.1:1/cart skipped: it matches links.deny "/cart", so it is never requested` {
		t.Errorf("logs %+v, want the skipped start URL", logs)
	}
	spiders, err := e.js.KeyValue(t.Context(), mesh.SpidersBucket)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := spiders.Put(t.Context(), "only", []byte("name: only\nstart_urls: [\"http://127.0.0.1:1/cart\"]\nlinks: {deny: [\"/cart\"]}\n")); err != nil {
		t.Fatal(err)
	}
	if _, err := e.ctl.Start(t.Context(), "only"); err == nil || !strings.Contains(err.Error(), "nothing to crawl") {
		t.Errorf("start of a spider whose only start URL is denied: %v", err)
	}
}

// GoSpiderWarning warns only when online workers list their Go spiders
// and none has the spec's: workers of older versions list none, and an
// offline worker's list says nothing of now.
func TestGoSpiderWarning(t *testing.T) {
	w := func(id string, online bool, goSpiders ...string) clusterview.Node {
		return clusterview.Node{ID: id, Role: mesh.RoleWorker, Online: online, Heartbeat: mesh.Heartbeat{GoSpiders: goSpiders}}
	}
	s := &spec.Spec{Name: "s", Go: "titels"}
	for _, c := range []struct {
		name  string
		nodes []clusterview.Node
		want  string
	}{
		{"no workers", nil, ""},
		{"older workers list none", []clusterview.Node{w("w1", true)}, ""},
		{"one has it", []clusterview.Node{w("w1", true, "titles"), w("w2", true, "titels")}, ""},
		{"only an offline one has it", []clusterview.Node{w("w1", true, "titles", "prices"), w("w2", false, "titels")},
			`no online worker has the Go spider "titels" (they have: prices, titles)`},
	} {
		got := crawlctl.GoSpiderWarning(s, c.nodes)
		if !strings.HasPrefix(got, c.want) || (c.want == "") != (got == "") {
			t.Errorf("%s: %q, want %q", c.name, got, c.want)
		}
	}
	if got := crawlctl.GoSpiderWarning(&spec.Spec{Name: "d"}, []clusterview.Node{w("w1", true, "titles")}); got != "" {
		t.Errorf("declarative spec: %q", got)
	}
}
