package main

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/crawlmesh/crawlmesh/pkg/crawlctl"
	"github.com/crawlmesh/crawlmesh/pkg/mesh"
	"github.com/crawlmesh/crawlmesh/pkg/shopsite"
	"github.com/crawlmesh/crawlmesh/services/internal/harness"
)

// shopServer serves pkg/shopsite on loopback through a wrapper that keeps
// every session cookie value the site hands out or sees (secrets the mesh
// must never store or show) and checks the Host header (the site itself
// does that only when it runs its own listener).
type shopServer struct {
	site *shopsite.Site
	base string // http://127.0.0.1:PORT
	host string

	mu      sync.Mutex
	tokens  map[string]bool
	badHost []string
}

func newShop(t *testing.T, opts shopsite.Options) *shopServer {
	t.Helper()
	s := &shopServer{site: shopsite.New(opts), tokens: map[string]bool{}}
	h := s.site.Handler()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if ck, err := r.Cookie(shopsite.SessionCookie); err == nil {
			s.token(ck.Value)
		}
		if r.Host != s.host {
			s.mu.Lock()
			s.badHost = append(s.badHost, r.Host+r.URL.RequestURI())
			s.mu.Unlock()
		}
		h.ServeHTTP(w, r)
		for _, ck := range (&http.Response{Header: w.Header()}).Cookies() {
			if ck.Name == shopsite.SessionCookie {
				s.token(ck.Value)
			}
		}
	}))
	t.Cleanup(srv.Close)
	s.base, s.host = srv.URL, strings.TrimPrefix(srv.URL, "http://")
	return s
}

func (s *shopServer) token(v string) {
	s.mu.Lock()
	s.tokens[v] = true
	s.mu.Unlock()
}

// secrets are the API key, the password and every session cookie value.
func (s *shopServer) secrets(env []string) harness.Secrets {
	sec := harness.Secrets{}
	for _, kv := range env {
		name, v, _ := strings.Cut(kv, "=")
		sec["the value of "+name] = v
	}
	o := s.site.Options()
	sec["the site's password"], sec["the site's API key"] = o.Password, o.APIKey
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for v := range s.tokens {
		n++
		sec[fmt.Sprintf("session cookie value %d", n)] = v
	}
	return sec
}

// reqKind names what a request of the shop's log was for.
func reqKind(r shopsite.Request) string {
	path, _, _ := strings.Cut(r.URI, "?")
	switch {
	case path == "/robots.txt":
		return "robots.txt"
	case strings.HasPrefix(path, "/sitemap"):
		return "sitemap"
	case path == "/login" && r.Method == http.MethodPost:
		return "login POST"
	case path == "/login":
		return "login form GET"
	case path == "/account":
		return "account (after login)"
	case strings.HasPrefix(path, "/api/"):
		return "api"
	case r.Status >= 300 && r.Status < 400:
		return "redirect hop"
	}
	return "page"
}

// requestSummary counts the shop's requests by kind, status and note.
func requestSummary(reqs []shopsite.Request) string {
	count := map[string]int{}
	for _, r := range reqs {
		k := fmt.Sprintf("%-22s %d", reqKind(r), r.Status)
		if r.Note != "" {
			k += " (" + r.Note + ")"
		}
		count[k]++
	}
	keys := make([]string, 0, len(count))
	for k := range count {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	fmt.Fprintf(&b, "%d requests:\n", len(reqs))
	for _, k := range keys {
		fmt.Fprintf(&b, "  %4d  %s\n", count[k], k)
	}
	return b.String()
}

// cliLog keeps every CLI run's output, to search it for secrets.
func cliLog(m *harness.Mesh) *harness.SyncBuf {
	var b harness.SyncBuf
	m.CLI.Ran = func(o, e string) { _, _ = b.Write([]byte(o + e)) }
	return &b
}

// scanSecrets runs the commands that show a crawl and its spider, then
// searches them, everything the mesh keeps (KV, streams), the processes'
// output and /metrics for secrets, and fails naming each leak.
func scanSecrets(t *testing.T, m *harness.Mesh, cli *harness.SyncBuf, id string, sec harness.Secrets) {
	t.Helper()
	for _, args := range [][]string{{"spider", "get", "shop"}, {"spider", "get", "shop", "-o", "json"},
		{"crawl", "status", id}, {"crawl", "status", id, "-o", "json"}, {"crawl", "logs", id},
		{"results", "export", id}, {"nodes", "-o", "json"}} {
		m.CLI.Run(args...)
	}
	for _, id := range []string{"m1", "w1", "w2", "w3"} {
		if hb, err := m.Heartbeat(id); err == nil {
			b, _ := json.Marshal(hb)
			if leaks := sec.Find(string(b)); len(leaks) > 0 {
				t.Errorf("heartbeat of %s holds %v", id, leaks)
			}
		}
	}
	scan := harness.NewLeakScan(sec)
	scan.Check("cli outputs", "the output of crawlmesh commands", cli.String())
	m.ScanMesh(scan)
	for _, l := range scan.Leaks() {
		t.Errorf("secret leaked: %s", l)
	}
	t.Logf("searched for %d secrets (%s): %v", len(sec), strings.Join(slices.Sorted(maps.Keys(sec)), ", "), scan.Scanned)
}

// TestShopCrawl: three workers crawl the loopback shop of pkg/shopsite,
// which needs every spec field of issue 13; the export is exactly the
// expected items, the shop saw nothing forbidden, every page once and
// every request with the spider's User-Agent, and no secret reached KV,
// a stream, a log, a heartbeat, metrics or the CLI.
func TestShopCrawl(t *testing.T) {
	shop := newShop(t, shopsite.Options{})
	env := shop.site.Env()
	m := harness.StartMesh(t, harness.MeshConfig{Workers: 3, WorkerEnv: env, HTTP: true, AckWait: 5 * time.Second})
	cli := cliLog(m)
	m.CLI.Apply(shop.site.SpecYAML(shop.base))
	id := m.CLI.Start("shop")
	// Mid-crawl the work queue and the seen-set still hold the crawl's
	// tasks and keys (both are empty or gone at the end): search them too.
	harness.Eventually(t, time.Minute, "10 pages done", func() bool {
		st, err := m.Status(id)
		return err == nil && (st.PagesOK >= 10 || st.State != mesh.CrawlRunning)
	})
	mid := harness.NewLeakScan(shop.secrets(env))
	m.ScanMesh(mid)
	for _, l := range mid.Leaks() {
		t.Errorf("secret leaked (mid-crawl): %s", l)
	}
	t.Logf("mid-crawl search: %v", mid.Scanned)
	st := waitCrawlEnd(t, m, id, 3*time.Minute)
	t.Logf("status: %+v", st)
	if st.State != mesh.CrawlCompleted {
		t.Errorf("crawl %s, want completed; logs:\n%s", st.State, m.CLI.Must("crawl", "logs", id))
	} else if err := m.CLI.Wait(id, time.Minute); err != nil {
		t.Errorf("%v", err)
	}

	want := shop.site.Expected(shop.base)
	var got []shopsite.ExpectedItem
	for _, it := range m.CLI.Export(id) {
		got = append(got, shopsite.ExpectedItem{URL: it.URL, Data: it.Data})
	}
	t.Logf("exported %d items, %d expected", len(got), len(want))
	for _, d := range shopsite.Diff(want, got) {
		t.Errorf("items: %s", d)
	}
	for _, v := range shop.site.Violations() {
		t.Errorf("shop violation: %s", v)
	}
	shop.mu.Lock()
	badHost := slices.Clone(shop.badHost)
	shop.mu.Unlock()
	for _, h := range badHost {
		t.Errorf("request to another host name (outside allowed_domains): %s", h)
	}

	reqs := shop.site.Requests()
	t.Logf("shop request log: %s", requestSummary(reqs))
	ok := map[string]int{} // URI -> 200 answers to GET
	robots := 0
	for _, r := range reqs {
		if !strings.HasPrefix(r.UserAgent, shopsite.ProductToken+"/") {
			t.Errorf("%s %s with User-Agent %q", r.Method, r.URI, r.UserAgent)
		}
		if r.URI == "/robots.txt" {
			robots++
		}
		if r.Method == http.MethodGet && r.Status == http.StatusOK {
			ok[r.URI]++
		}
	}
	pages := map[string]bool{}
	for _, u := range shop.site.ExpectedPages(shop.base) {
		uri := strings.TrimPrefix(u, shop.base)
		pages[uri] = true
		if ok[uri] != 1 {
			t.Errorf("page %s answered 200 %d times, want once", uri, ok[uri])
		}
	}
	aux := map[string]bool{"/robots.txt": true, "/sitemap_index.xml": true, "/sitemaps/products.xml.gz": true,
		"/sitemaps/pages.xml": true, "/account": true, "/login": true}
	for uri, n := range ok {
		switch {
		case !pages[uri] && !aux[uri]:
			t.Errorf("%s fetched (%d times): not a page of the crawl", uri, n)
		case aux[uri] && uri != "/account" && uri != "/login" && n != 1:
			t.Errorf("%s fetched %d times, want once", uri, n)
		}
	}
	if robots != 1 {
		t.Errorf("robots.txt requested %d times by 3 workers, want once (shared mesh-wide)", robots)
	}
	if n := shop.site.Logins(); n <= len(m.Workers) {
		t.Errorf("%d logins by %d workers: sessions expire every %d pages, so relogins must have happened",
			n, len(m.Workers), shop.site.Options().SessionPages)
	} else {
		t.Logf("%d logins by %d workers (sessions expire after %d pages)", n, len(m.Workers), shop.site.Options().SessionPages)
	}
	if st.Items != int64(len(want)) || st.Dead != 0 {
		t.Errorf("status counts %d items and %d dead letters, want %d and 0", st.Items, st.Dead, len(want))
	}
	scanSecrets(t, m, cli, id, shop.secrets(env))
	if t.Failed() {
		logShop(t, reqs)
		t.Logf("crawl logs:\n%s", m.CLI.Must("crawl", "logs", id))
	}
}

// logShop writes the shop's whole request log.
func logShop(t *testing.T, reqs []shopsite.Request) {
	t.Helper()
	var b strings.Builder
	for _, r := range reqs {
		fmt.Fprintf(&b, "  %s %-4s %-40s %d %-22s key=%-2s cookies=%v form=%v %s\n", r.Time.Format("15:04:05.000000"),
			r.Method, r.URI, r.Status, reqKind(r), r.APIKey, r.Cookies, r.FormFields, r.Note)
	}
	t.Logf("shop request log:\n%s", b.String())
}

// waitCrawlEnd waits up to timeout for the crawl to leave the running
// state and returns its status; a crawl still running then is an error
// (not fatal: what the site saw is still worth checking), and is
// cancelled.
func waitCrawlEnd(t *testing.T, m *harness.Mesh, id string, timeout time.Duration) crawlctl.Status {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var st crawlctl.Status
	var err error
	for time.Now().Before(deadline) {
		if st, err = m.Status(id); err == nil && st.State != mesh.CrawlRunning {
			return st
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Errorf("crawl %s still %q after %v (%+v, %v); cancelling it", id, st.State, timeout, st, err)
	m.CLI.Run("crawl", "cancel", id)
	return st
}

// statusRaw is `crawl status ID -o json` as text and its state, and the
// text form of `crawl status ID`.
func statusRaw(m *harness.Mesh, id string) (js, state, text string) {
	js = m.CLI.Must("crawl", "status", id, "-o", "json")
	var st struct {
		State string `json:"state"`
	}
	if err := json.Unmarshal([]byte(js), &st); err != nil {
		m.T.Fatalf("crawl status -o json: %v\n%s", err, js)
	}
	return js, st.State, m.CLI.Must("crawl", "status", id)
}

// crawlFails starts the shop spider on workers with env and checks it ends
// failed with a reason naming want everywhere a user looks, without a pile
// of dead letters and without leaking a secret. It returns the shop.
func crawlFails(t *testing.T, env []string, want string) *shopServer {
	shop := newShop(t, shopsite.Options{})
	m := harness.StartMesh(t, harness.MeshConfig{Workers: 3, WorkerEnv: env, HTTP: true, AckWait: 5 * time.Second})
	cli := cliLog(m)
	m.CLI.Apply(shop.site.SpecYAML(shop.base))
	id := m.CLI.Start("shop")
	waitCrawlEnd(t, m, id, 90*time.Second)
	js, state, text := statusRaw(m, id)
	t.Logf("crawl status:\n%s\n%s", text, js)
	if state != mesh.CrawlFailed {
		t.Errorf("crawl ended %s, want %s", state, mesh.CrawlFailed)
	}
	if !strings.Contains(strings.ToLower(js), strings.ToLower(want)) || !strings.Contains(strings.ToLower(text), strings.ToLower(want)) {
		t.Errorf("crawl status does not name %q (json and text above)", want)
	}
	out, errOut, code := m.CLI.Run("crawl", "wait", id)
	t.Logf("crawl wait: exit %d: %s%s", code, out, errOut)
	if code == 0 {
		t.Errorf("crawl wait of a failed crawl exited 0")
	}
	if !strings.Contains(strings.ToLower(out+errOut), strings.ToLower(want)) {
		t.Errorf("crawl wait does not name %q", want)
	}
	logs := m.CLI.Must("crawl", "logs", id)
	if !strings.Contains(strings.ToLower(logs), strings.ToLower(want)) {
		t.Errorf("crawl logs do not name %q:\n%s", want, logs)
	}
	// Give stragglers time to turn into dead letters, if they were to.
	time.Sleep(3 * time.Second)
	if dl := m.DeadLetters(id); len(dl) > 2 {
		t.Errorf("%d dead letters, want at most 2 (a crawl-level failure is not a pile of dead letters): %v", len(dl), dl)
	}
	var workerLines []string
	for _, w := range m.Workers {
		for _, l := range strings.Split(w.Output(), "\n") {
			if strings.Contains(strings.ToLower(l), strings.ToLower(want)) {
				workerLines = append(workerLines, w.Name()+": "+l)
			}
		}
	}
	if len(workerLines) == 0 {
		t.Errorf("no worker log line names %q", want)
	} else {
		t.Logf("worker log lines naming %q (%d), first: %s", want, len(workerLines), workerLines[0])
	}
	t.Logf("shop request log: %s", requestSummary(shop.site.Requests()))
	scanSecrets(t, m, cli, id, shop.secrets(env))
	return shop
}

// TestShopLoginFailure: the workers hold a wrong password. The crawl
// fails naming the login, `crawl wait` exits non-zero, no pile of dead
// letters, the shop sees only a few refused logins and no page behind the
// login, and the wrong password shows up nowhere either.
func TestShopLoginFailure(t *testing.T) {
	key := shopsite.New(shopsite.Options{}).Options().APIKey
	env := []string{shopsite.EnvKey + "=" + key, shopsite.EnvPassword + "=wrong-pass-Q7x9z"}
	shop := crawlFails(t, env, "login")
	logins := 0
	for _, r := range shop.site.Requests() {
		if r.Method == http.MethodPost {
			logins++
		}
		if r.Status == http.StatusOK && reqKind(r) == "page" && r.URI != "/" {
			t.Errorf("%s answered 200 though no login succeeded", r.URI)
		}
	}
	t.Logf("%d refused login attempts by 3 workers", logins)
	if logins == 0 || logins > 12 {
		t.Errorf("%d login attempts by 3 workers, want 1 to 12: a refused login is a crawl-level failure, not retried per task", logins)
	}
	for _, v := range shop.site.Violations() {
		if !strings.Contains(v, "wrong credentials") {
			t.Errorf("shop violation: %s", v)
		}
	}
}

// TestShopUnsetVariable: the workers lack SHOP_KEY, which the spec's
// request header names. The crawl fails with a reason naming SHOP_KEY,
// and no request carries an empty key.
func TestShopUnsetVariable(t *testing.T) {
	pw := shopsite.New(shopsite.Options{}).Options().Password
	shop := crawlFails(t, []string{shopsite.EnvPassword + "=" + pw}, shopsite.EnvKey)
	for _, r := range shop.site.Requests() {
		t.Errorf("the shop got %s %s though every request needs the unset %s", r.Method, r.URI, shopsite.EnvKey)
	}
}
