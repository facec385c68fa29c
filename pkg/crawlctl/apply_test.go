package crawlctl_test

import (
	"fmt"
	"strings"
	"testing"

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
