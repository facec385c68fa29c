package progspider

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/crawlmesh/crawlmesh/pkg/files"
	"github.com/crawlmesh/crawlmesh/pkg/natstest"
	"github.com/crawlmesh/crawlmesh/pkg/spec"
	"github.com/crawlmesh/crawlmesh/pkg/spiderproto"
)

type crawlLeveler interface{ CrawlLevel() bool }

func isCrawlLevel(err error) bool {
	var cl crawlLeveler
	return errors.As(err, &cl) && cl.CrawlLevel()
}

const page = `<html><body><h1>Tea</h1><a href="/p/2">next</a></body></html>`

func parse(t *testing.T, r *Runner, s *spec.Spec) (spiderproto.Answer, error) {
	t.Helper()
	return r.Parse(t.Context(), s, spiderproto.Page{URL: "http://127.0.0.1/p/1", Status: 200, Body: page, Crawl: "c1", Spider: s.Name})
}

func TestInlineScript(t *testing.T) {
	r := New(Config{})
	defer r.Close()
	s := &spec.Spec{Name: "js", Script: `function parse(p) { return {items: [{title: p.css("h1")[0].text(), n: 7}], links: ["/p/2"]} }`}
	ans, err := parse(t, r, s)
	if err != nil {
		t.Fatal(err)
	}
	if ans.Items[0]["title"] != "Tea" || ans.Items[0]["n"] != "7" || ans.Links[0] != "/p/2" {
		t.Errorf("answer %+v", ans)
	}
	if len(r.scripts) != 1 {
		t.Errorf("%d compiled versions after one script, want 1", len(r.scripts))
	}
	if _, err := parse(t, r, s); err != nil || len(r.scripts) != 1 {
		t.Errorf("second page: %v, %d versions: a script is compiled once per version", err, len(r.scripts))
	}
}

func TestCrawlLevelErrors(t *testing.T) {
	r := New(Config{})
	defer r.Close()
	_, err := parse(t, r, &spec.Spec{Name: "bad", Script: "function parse(p) { return {"})
	if !isCrawlLevel(err) || !strings.Contains(err.Error(), "line 1") {
		t.Errorf("a script that does not compile: %v; want a crawl-level error with its line", err)
	}
	_, err = parse(t, r, &spec.Spec{Name: "nobin", Command: []string{"/nonexistent/spider-binary"}})
	if !isCrawlLevel(err) || !strings.Contains(err.Error(), "cannot start") {
		t.Errorf("a command that cannot start: %v; want a crawl-level error", err)
	}
	_, err = parse(t, r, &spec.Spec{Name: "nofiles", ScriptFile: "x.js"})
	if !isCrawlLevel(err) {
		t.Errorf("script_file without a file store: %v; want a crawl-level error", err)
	}
	// A script that throws fails its page only.
	_, err = parse(t, r, &spec.Spec{Name: "throws", Script: `function parse(p) { throw new Error("boom") }`})
	if err == nil || isCrawlLevel(err) || !strings.Contains(err.Error(), "boom") {
		t.Errorf("a script that throws: %v; want a page error naming the message", err)
	}
}

// TestScriptFileVersions: a new version of a script file is compiled and
// used by the next page; an unchanged one is neither fetched nor compiled
// again.
func TestScriptFileVersions(t *testing.T) {
	s := natstest.RunServer(t)
	_, js := natstest.Connect(t, s)
	obs, err := js.CreateObjectStore(t.Context(), jetstream.ObjectStoreConfig{Bucket: files.Bucket})
	if err != nil {
		t.Fatal(err)
	}
	store := files.New(obs)
	cache, err := files.NewCache(store, t.TempDir(), files.WithLookupTTL(0))
	if err != nil {
		t.Fatal(err)
	}
	put := func(v string) {
		src := `function parse(p) { return {items: [{v: "` + v + `"}]} }`
		if _, err := store.Put(context.Background(), "s.js", strings.NewReader(src)); err != nil {
			t.Fatal(err)
		}
	}
	r := New(Config{Files: cache})
	defer r.Close()
	sp := &spec.Spec{Name: "f", ScriptFile: "s.js"}
	put("1")
	for range 3 {
		ans, err := parse(t, r, sp)
		if err != nil || ans.Items[0]["v"] != "1" {
			t.Fatalf("v1: %+v, %v", ans, err)
		}
	}
	if n := cache.Downloads(); n != 1 {
		t.Errorf("%d downloads for one version, want 1", n)
	}
	put("2")
	ans, err := parse(t, r, sp)
	if err != nil || ans.Items[0]["v"] != "2" {
		t.Fatalf("after the put of v2: %+v, %v", ans, err)
	}
	if len(r.scripts) != 2 {
		t.Errorf("%d compiled versions, want 2", len(r.scripts))
	}
}
