package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/crawlmesh/crawlmesh/pkg/crawlctl"
	"github.com/crawlmesh/crawlmesh/pkg/crawler"
	"github.com/crawlmesh/crawlmesh/pkg/demosite"
	"github.com/crawlmesh/crawlmesh/pkg/mesh"
	"github.com/crawlmesh/crawlmesh/pkg/natsconn"
	"github.com/crawlmesh/crawlmesh/pkg/spec"
)

// runDemo serves the demo bookshop on a loopback port, applies its spider,
// crawls it with a progress bar and prints a summary. With keepSite the
// site serves on until ctx ends, so that spider books can be crawled again
// while the mesh runs (from the console, say); else it stops on return.
func runDemo(ctx context.Context, c *cli, natsURL string, log *slog.Logger, keepSite bool) error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("demo site: %w", err)
	}
	srv := &http.Server{Handler: demosite.Handler(), ReadHeaderTimeout: 5 * time.Second}
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(ln) }()
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
		<-done
	}()
	base := "http://" + ln.Addr().String()

	nc, js, err := natsconn.Dial(ctx, natsconn.Config{URL: natsURL, Name: "crawlmesh-demo"}, log, natsconn.Hooks{})
	if err != nil {
		return err
	}
	defer nc.Close()
	s, err := spec.Parse([]byte(demosite.Spec(base)))
	if err != nil {
		return fmt.Errorf("demo spider: %w", err)
	}
	spiders, err := js.KeyValue(ctx, mesh.SpidersBucket)
	if err != nil {
		return fmt.Errorf("open bucket %s: %w", mesh.SpidersBucket, err)
	}
	b, _ := json.Marshal(s)
	if _, err := spiders.Put(ctx, s.Name, b); err != nil {
		return fmt.Errorf("apply demo spider: %w", err)
	}
	fmt.Fprintf(c.stderr, "demo: bookshop at %s, spider %q applied\n", base, s.Name)
	crawls, err := js.KeyValue(ctx, mesh.CrawlsBucket)
	if err != nil {
		return err
	}
	cancelOldDemoCrawls(ctx, c, nc, crawls, s.Name)
	id, err := crawlctl.Call(ctx, nc, mesh.APICrawlStart, crawlctl.APIRequest{Spider: s.Name}, 10*time.Second)
	if err != nil {
		return fmt.Errorf("start demo crawl: %w", err)
	}
	fmt.Fprintf(c.stderr, "demo: crawl %s started\n", id)
	werr := waitCrawl(ctx, c, js, crawls, id)
	st, err := crawlctl.ReadStatus(ctx, js, crawls, id)
	if err != nil {
		return err
	}
	wantPages, wantItems := demosite.Expected()
	// The summary is the command's result: on stdout, apart from the
	// progress and logs on stderr, for scripts (found by review).
	fmt.Fprintf(c.stdout, `
demo crawl %s: %s in %.1fs
  pages:   %d fetched (the site has %d), %d failed (robots.txt keeps the crawler out of /admin/), %d dead letters
  items:   %d (the site has %d)
  rate:    %.1f pages/s
  results: stream %s on %s, subject %s
  export:  %s results export %s --format jsonl --out books.jsonl --nats %s
           (while the mesh runs; its data stays in --data for the next crawlmesh up)
`, id, st.State, st.Elapsed, st.PagesOK, wantPages, st.PagesFailed, st.Dead, st.Items, wantItems, st.Rate,
		mesh.ResultsStream, natsURL, mesh.ResultSubject(id), selfCommand(), id, natsURL)
	if keepSite {
		fmt.Fprintf(c.stdout, "  the demo bookshop stays up at %s while the mesh runs: spider books can be crawled again\n", base)
		<-ctx.Done()
	}
	return werr
}

// selfCommand is how to run this program again: the README's `go run`
// when it runs so (from Go's build cache), else as it was invoked.
func selfCommand() string {
	if exe, err := os.Executable(); err == nil && strings.Contains(exe, string(filepath.Separator)+"go-build") {
		return "go run ./services/crawlmesh"
	}
	return os.Args[0]
}

// cancelOldDemoCrawls cancels demo crawls an earlier `up --demo` left
// running (stopped by Ctrl-C mid-crawl). Each run serves the bookshop on a
// new port, so such a crawl could only dead-letter its tasks one by one
// against the old, closed port, running on for as long as the mesh does.
func cancelOldDemoCrawls(ctx context.Context, c *cli, nc *nats.Conn, crawls jetstream.KeyValue, spider string) {
	keys, err := crawls.ListKeys(ctx)
	if err != nil {
		return
	}
	for id := range keys.Keys() {
		cr, _, err := crawler.ReadCrawl(ctx, crawls, id)
		if err != nil || cr.Spider != spider || cr.State != mesh.CrawlRunning {
			continue
		}
		if _, err := crawlctl.Call(ctx, nc, mesh.APICrawlCancel, crawlctl.APIRequest{ID: id}, 10*time.Second); err != nil {
			fmt.Fprintf(c.stderr, "demo: crawl %s of an earlier demo still runs against its closed bookshop; cancel it: %v\n", id, err)
			continue
		}
		fmt.Fprintf(c.stderr, "demo: crawl %s of an earlier demo cancelled (its bookshop is gone)\n", id)
	}
}
