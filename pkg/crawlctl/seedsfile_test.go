package crawlctl_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/crawlmesh/crawlmesh/pkg/crawlctl"
	"github.com/crawlmesh/crawlmesh/pkg/crawler"
	"github.com/crawlmesh/crawlmesh/pkg/files"
	"github.com/crawlmesh/crawlmesh/pkg/mesh"
)

// seedsFile builds a 10,000-line seeds file: URLs with duplicates (also
// across batches and in a different spelling), comments, blank lines and
// bad lines. It returns the file, the unique canonical URLs and the
// numbers of the bad lines.
func seedsFile() (string, map[string]bool, []int) {
	var b strings.Builder
	want := map[string]bool{}
	var bad []int
	for line := 1; line <= 10_000; line++ {
		switch {
		case line%997 == 0:
			b.WriteString("ftp://127.0.0.1/file\n")
			bad = append(bad, line)
		case line%991 == 0:
			b.WriteString("http://[::1\n")
			bad = append(bad, line)
		case line == 5000:
			b.WriteString("http://127.0.0.1:1/" + strings.Repeat("x", 9000) + "\n")
			bad = append(bad, line)
		case line%89 == 0: // outside allowed_domains
			fmt.Fprintf(&b, "http://other.example/p/%d\n", line)
			bad = append(bad, line)
		case line%83 == 0: // matches links.deny
			fmt.Fprintf(&b, "http://127.0.0.1:1/denied/%d\n", line)
			bad = append(bad, line)
		case line%101 == 0:
			b.WriteString("# a comment\n")
		case line%103 == 0:
			b.WriteString("   \r\n")
		default:
			k := line % 8000 // lines 8001.. repeat earlier URLs
			if k%2 == 0 {
				fmt.Fprintf(&b, "  HTTP://127.0.0.1:1/p/%d  \r\n", k) // canonicalised
			} else {
				fmt.Fprintf(&b, "http://127.0.0.1:1/p/%d\n", k)
			}
			want[fmt.Sprintf("http://127.0.0.1:1/p/%d", k)] = true
		}
	}
	return strings.TrimSuffix(b.String(), "\n"), want, bad
}

// TestStartSeedsFile: a crawl started with a seeds file of 10,000 lines
// has exactly the unique valid URLs as depth-0 tasks; each bad line is in
// the crawl's log with its line number. URLs outside allowed_domains or
// matching links.deny are bad lines: they were requested, with the
// spider's headers and session (found by review).
func TestStartSeedsFile(t *testing.T) {
	e := newEnv(t, `name: t
start_urls: ["http://127.0.0.1:1/start"]
allowed_domains: ["127.0.0.1"]
links: {deny: ["/denied/"]}
`)
	st, err := files.Open(t.Context(), e.js)
	if err != nil {
		t.Fatal(err)
	}
	body, want, bad := seedsFile()
	if _, err := st.Put(t.Context(), "seeds.txt", strings.NewReader(body)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); _ = e.ctl.Serve(ctx, e.nc) }()
	defer func() { cancel(); <-done }()

	if _, err := crawlctl.Call(t.Context(), e.nc, mesh.APICrawlStart, crawlctl.APIRequest{Spider: "t", SeedsFile: "nope.txt"}, 5*time.Second); err == nil ||
		!strings.Contains(err.Error(), "nope.txt") {
		t.Errorf("start with a missing seeds file: %v, want an error naming it", err)
	}
	t0 := time.Now()
	id, err := crawlctl.Call(t.Context(), e.nc, mesh.APICrawlStart, crawlctl.APIRequest{Spider: "t", SeedsFile: "seeds.txt"}, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	for {
		cr, _, err := crawler.ReadCrawl(t.Context(), e.crawls, id)
		if err != nil {
			t.Fatal(err)
		}
		if cr.SeededAt != nil {
			break
		}
		if time.Since(t0) > 60*time.Second {
			t.Fatal("not seeded within 60s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("seeded %d URLs in %v", len(want), time.Since(t0).Round(time.Millisecond))
	got := map[string]bool{}
	for _, tk := range e.queued(t, id) {
		if got[tk.URL] {
			t.Errorf("task %s twice", tk.URL)
		}
		got[tk.URL] = true
		if tk.Depth != 0 || tk.ID != mesh.URLHash(tk.URL) || tk.Spider != "t" {
			t.Errorf("task %+v: want depth 0 and its URL hash", tk)
		}
	}
	if len(got) != len(want) {
		t.Errorf("%d tasks, want %d (the unique valid URLs; start_urls not seeded)", len(got), len(want))
	}
	for u := range want {
		if !got[u] {
			t.Errorf("URL %s not seeded", u)
			break
		}
	}
	// The bad lines, each with its number, in the crawl's log.
	logs := readLogs(t, e.js, id)
	for _, n := range bad {
		found := false
		for _, l := range logs {
			if l.Outcome == crawlctl.OutcomeBadSeed && strings.Contains(l.Error, fmt.Sprintf("seeds.txt line %d:", n)) {
				found = true
			}
		}
		if !found {
			t.Errorf("bad line %d not in the crawl's log %+v", n, logs)
		}
	}
	if len(logs) != len(bad) {
		t.Errorf("%d log entries, want one per bad line (%d)", len(logs), len(bad))
	}
	for _, want := range []string{"seeds file seeds.txt line 89: host other.example is not in allowed_domains",
		`seeds file seeds.txt line 83: it matches links.deny "/denied/", so it is never requested`} {
		if !slices.ContainsFunc(logs, func(l mesh.LogEntry) bool { return l.Error == want }) {
			t.Errorf("no log entry %q", want)
		}
	}
}

// TestSeedsFileMaxPages: seeds count toward max_pages like start URLs.
func TestSeedsFileMaxPages(t *testing.T) {
	e := newEnv(t, `name: t
start_urls: ["http://127.0.0.1:1/start"]
max_pages: 7
`)
	st, _ := files.Open(t.Context(), e.js)
	var b strings.Builder
	for i := range 2000 {
		fmt.Fprintf(&b, "http://127.0.0.1:1/%d\n", i%1500)
	}
	if _, err := st.Put(t.Context(), "s", strings.NewReader(b.String())); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	id, err := e.ctl.StartSeeds(ctx, "t", "s")
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		cr, _, _ := crawler.ReadCrawl(t.Context(), e.crawls, id)
		if cr != nil && cr.SeededAt != nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	// Wait for the background seeding to stop (Run waits for it).
	_ = e.ctl.Run(ctx, time.Hour)
	if q := e.queued(t, id); len(q) != 7 {
		t.Errorf("%d tasks, want max_pages 7", len(q))
	}
}

func readLogs(t *testing.T, js jetstream.JetStream, id string) []mesh.LogEntry {
	t.Helper()
	s, err := js.Stream(t.Context(), mesh.LogsStream)
	if err != nil {
		t.Fatal(err)
	}
	var out []mesh.LogEntry
	deadline := time.Now().Add(5 * time.Second)
	var last int
	for time.Now().Before(deadline) {
		info, err := s.Info(t.Context(), jetstream.WithSubjectFilter(mesh.LogSubject(id)))
		if err != nil {
			t.Fatal(err)
		}
		n := int(info.State.Subjects[mesh.LogSubject(id)])
		if n > 0 && n == last {
			break
		}
		last = n
		time.Sleep(200 * time.Millisecond)
	}
	c, err := s.OrderedConsumer(t.Context(), jetstream.OrderedConsumerConfig{FilterSubjects: []string{mesh.LogSubject(id)}})
	if err != nil {
		t.Fatal(err)
	}
	for len(out) < last {
		batch, err := c.Fetch(last-len(out), jetstream.FetchMaxWait(2*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for m := range batch.Messages() {
			n++
			var l mesh.LogEntry
			if err := json.Unmarshal(m.Data(), &l); err != nil {
				t.Fatal(err)
			}
			out = append(out, l)
		}
		if n == 0 {
			break
		}
	}
	return out
}
