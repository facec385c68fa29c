package jsspider

import (
	"context"
	"fmt"
	"net/http/httptest"
	"testing"

	"github.com/crawlmesh/crawlmesh/pkg/spiderproto"
	"github.com/crawlmesh/crawlmesh/pkg/synthsite"
)

func synthPage(t testing.TB, i int) spiderproto.Page {
	t.Helper()
	h := synthsite.New(synthsite.Config{Pages: 1000})
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", fmt.Sprintf("/p/%d.html", i), nil))
	if rec.Code != 200 {
		t.Fatalf("synthsite: %d", rec.Code)
	}
	return spiderproto.Page{URL: fmt.Sprintf("http://synth.test/p/%d.html", i), Status: 200,
		Headers: spiderproto.Headers(rec.Header()), Body: rec.Body.String(), Depth: 1, Crawl: "c", Spider: "synth"}
}

// BenchmarkParse runs the synthsite spider as a script on a synthsite
// product page (about 6 KB, one item, ten links), to set against
// pkg/extract's BenchmarkPage/synthsite (the declarative spider).
func BenchmarkParse(b *testing.B) {
	pool := NewPool(mustCompile(b, readFile(b, "testdata/synth.js")), Options{})
	page := synthPage(b, 3)
	ctx := context.Background()
	if ans, err := pool.Parse(ctx, page); err != nil || len(ans.Items) != 1 || len(ans.Links) != 10 {
		b.Fatal(ans, err)
	}
	b.Run("serial", func(b *testing.B) {
		b.SetBytes(int64(len(page.Body)))
		b.ReportAllocs()
		for b.Loop() {
			if _, err := pool.Parse(ctx, page); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.SetBytes(int64(len(page.Body)))
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := pool.Parse(ctx, page); err != nil {
					b.Fatal(err)
				}
			}
		})
	})
	b.Run("new-runtime", func(b *testing.B) {
		// The cost a pool saves: a fresh runtime (sandbox + top level) per page.
		p := mustCompile(b, readFile(b, "testdata/synth.js"))
		b.ReportAllocs()
		for b.Loop() {
			if _, err := NewPool(p, Options{}).Parse(ctx, page); err != nil {
				b.Fatal(err)
			}
		}
	})
}
