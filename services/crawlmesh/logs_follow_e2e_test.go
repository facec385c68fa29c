package main

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/crawlmesh/crawlmesh/pkg/mesh"
)

// TestLogsFollowCancelled: `crawl logs --follow` of a crawl that is
// cancelled prints every line the crawl writes, the pages a cancel caught
// in flight and the tasks dropped after it included; it ended at the
// record's change and missed those (found by review: 6 lines of 8).
func TestLogsFollowCancelled(t *testing.T) {
	// Each page takes 300 ms and links three more: the queue grows while
	// a few pages are in flight.
	site := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, err := strconv.Atoi(strings.TrimPrefix(r.URL.Path, "/slow/"))
		if err != nil {
			http.NotFound(w, r)
			return
		}
		time.Sleep(300 * time.Millisecond)
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprintf(w, "<html><title>p%d</title><body>", n)
		for k := 1; k <= 3; k++ {
			fmt.Fprintf(w, `<a href="/slow/%d">next</a>`, 3*n+k)
		}
		fmt.Fprint(w, "</body></html>")
	}))
	defer site.Close()
	m := startMesh(t, 1)
	m.apply(`name: slow
start_urls: ["` + site.URL + `/slow/0"]
follow: ["a"]
items:
  - selector: "html"
    fields:
      title: { css: "title" }
politeness:
  robots_txt: false
  parallelism: 2
  delay: 0s
`)
	id := strings.TrimSpace(m.mustCLI("crawl", "start", "slow"))
	follow := start(t, "crawlmesh", "crawl", "logs", id, "--follow", "--nats", m.url)
	waitFor(t, 30*time.Second, "a few pages crawled", func() bool { return m.status(id).PagesOK >= 3 })
	m.mustCLI("crawl", "cancel", id)
	if code := exitCode(t, follow, 60*time.Second); code != 0 {
		t.Fatalf("crawl logs --follow: exit %d\n%s", code, follow.Output())
	}
	st := m.status(id)
	if st.State != mesh.CrawlCancelled || st.Queued != 0 {
		t.Fatalf("after --follow returned: %+v; want cancelled with no task left", st)
	}
	logs := m.mustCLI("crawl", "logs", id)
	if !strings.Contains(logs, "dropped") {
		t.Errorf("no task dropped after the cancel; the test shows nothing:\n%s", logs)
	}
	var followed []string
	for _, l := range strings.Split(follow.Output(), "\n") {
		if l != "" && !strings.HasPrefix(l, "=== harness:") {
			followed = append(followed, l)
		}
	}
	if got := strings.Join(followed, "\n"); got != strings.TrimSpace(logs) {
		t.Errorf("crawl logs --follow printed\n%s\nwhere a read after the end prints\n%s", got, logs)
	}
}
