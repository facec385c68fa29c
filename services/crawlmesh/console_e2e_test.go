package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/fetch"
	"github.com/chromedp/cdproto/network"
	cdpage "github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/crawlmesh/crawlmesh/services/internal/harness"

	"github.com/crawlmesh/crawlmesh/pkg/heartbeat"
	"github.com/crawlmesh/crawlmesh/pkg/mesh"
	"github.com/crawlmesh/crawlmesh/pkg/synthsite"
)

// chromium finds Debian's chromium (or a Chrome) for the browser test.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("chromium not found: the console's browser test needs it; install it with `apt-get install -y chromium` (.ci/run does when it is missing)")
	return ""
}

// TestConsoleBrowser drives the web console in headless chromium as a
// person would: both workers online, a spec refused without the token
// and applied with it, a spec with two mistakes shown by field, a crawl
// started from the page whose progress moves to completion with every
// item, an item and the crawl's logs on its page, and a master without a
// token showing actions disabled with the reason. Every request the
// browser makes stays on loopback: the page is served through a counting
// front, and checkLoopback proves with negative controls that a request
// off loopback would be caught. Screenshots go to a temporary folder, or
// to CRAWLMESH_SCREENSHOTS (docs/console refreshes the README's).
func TestConsoleBrowser(t *testing.T) {
	token, tokenFile := consoleToken(t)
	m := harness.StartMesh(t, harness.MeshConfig{Workers: 2, HTTP: true, MasterArgs: []string{"--api-token-file", tokenFile}})
	const pages = 80
	site := httptest.NewServer(synthsite.New(synthsite.Config{Pages: pages}))
	t.Cleanup(site.Close)
	// A delay between requests to the host keeps the crawl running for
	// several seconds, so the page shows it moving.
	goodSpec := strings.Replace(synthsite.Spec("console", site.URL, synthsite.Config{Pages: pages}), "delay: 0s", "delay: 120ms", 1)
	br := newConsoleBrowser(t)
	base := br.front(m.HTTP["m1"])
	ctx, run, text, waitText, shot := br.ctx, br.run, br.text, br.waitText, br.shot

	// Nodes: both workers online, in words.
	run("open the console", chromedp.Navigate(base+"#nodes"))
	waitText(`#nodes-table tr[data-id="w1"] .online`, "online", 20*time.Second)
	waitText(`#nodes-table tr[data-id="w2"] .online`, "online", 20*time.Second)
	waitText(`#nodes-table tr[data-id="m1"]`, "leader", 20*time.Second)
	html, err := chromedp.Run(ctx, chromedp.OuterHTML(chromedp.CSS("html")))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(html, token) {
		t.Fatal("the page contains the token before it was entered")
	}
	shot("nodes.png")

	// An action without the token is refused, and nothing changed.
	run("apply without the token", chromedp.Navigate(base+"#spiders"), chromedp.WaitVisible(chromedp.CSS("#spec-yaml")),
		chromedp.SetValue(chromedp.CSS("#spec-yaml"), goodSpec), chromedp.Click(chromedp.CSS("#spec-apply")))
	waitText("#msg", "Refused (401)", 10*time.Second)
	if code := httpCode(t, base+"api/v1/spiders/console"); code != http.StatusNotFound {
		t.Fatalf("the spider exists after a refused apply: GET %d", code)
	}
	// With the token it succeeds.
	run("enter the token", chromedp.SendKeys(chromedp.CSS("#token"), token), chromedp.Click(chromedp.CSS("#token-save")))
	waitText("#auth-status", "Token entered", 5*time.Second)
	run("apply with the token", chromedp.Click(chromedp.CSS("#spec-apply")))
	waitText("#msg", "Spider console applied", 10*time.Second)
	waitText(`#spiders-table tr[data-id="console"]`, "console", 10*time.Second)

	// A spec with two mistakes: both shown with their fields and lines.
	bad := "name: Bad_Name\nstart_urls:\n  - \"ftp://example.com/\"\nmax_depth: 2\n"
	run("apply a bad spec", chromedp.SetValue(chromedp.CSS("#spec-yaml"), bad), chromedp.Click(chromedp.CSS("#spec-apply")))
	got := waitText(`#spec-errors li[data-field="name"]`, "line 1", 10*time.Second)
	if !strings.Contains(got, "lower-case") {
		t.Errorf("the name's error says %q", got)
	}
	waitText(`#spec-errors li[data-field="start_urls[0]"]`, "http and https", 5*time.Second)
	waitText(`#spec-errors li[data-field="start_urls[0]"]`, "line 3", 5*time.Second)
	invalid, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector("#spec-yaml").getAttribute("aria-invalid")`))
	if invalid != "true" {
		t.Errorf("the editor's aria-invalid is %q", invalid)
	}
	shot("spiders.png")

	// Start a crawl from the crawls page and watch it move and complete.
	run("start a crawl", chromedp.Navigate(base+"#crawls"), chromedp.WaitReady(chromedp.CSS(`#start-spider option[value="console"]`)),
		chromedp.SetValue(chromedp.CSS("#start-spider"), "console"), chromedp.Click(chromedp.CSS("#start-crawl")))
	msg := waitText("#msg", "started", 10*time.Second)
	id := regexp.MustCompile(`Crawl (\S+) started`).FindStringSubmatch(msg)
	if id == nil {
		t.Fatalf("no crawl id in %q", msg)
	}
	crawl := id[1]
	row := fmt.Sprintf(`#crawls-table tr[data-id=%q]`, crawl)
	seen := map[string]bool{}
	shotTaken := false
	harness.Eventually(t, 90*time.Second, "the crawl completes on the page", func() bool {
		p := text(row + " .pages")
		if p != "" {
			seen[p] = true
		}
		if !shotTaken && strings.Contains(text(row+" .state"), "running") && len(seen) >= 2 {
			shot("crawls.png")
			shotTaken = true
		}
		time.Sleep(300 * time.Millisecond)
		return strings.Contains(text(row+" .state"), "completed")
	}, func() string { return text(row) })
	if len(seen) < 3 {
		t.Errorf("the progress did not move on the page: it showed only %v", seen)
	}
	if got := text(row + " .items"); got != strconv.Itoa(pages) {
		t.Errorf("the page shows %q items, want %d", got, pages)
	}
	if got := text(row + " .pages"); !strings.HasPrefix(got, strconv.Itoa(pages)+" ok") {
		t.Errorf("the page shows pages %q, want %d ok", got, pages)
	}

	// The crawl's page: an item's title, the logs, the export links.
	run("open the crawl", chromedp.Navigate(base+"#crawl/"+url.PathEscape(crawl)))
	waitText("#crawl-id", crawl, 10*time.Second)
	waitText("#items-table tbody", "Item ", 10*time.Second)
	waitText("#items-table thead", "name", 5*time.Second)
	waitText("#logs-list", "/p/0.html", 10*time.Second)
	waitText("#logs-list", " ok ", 5*time.Second)
	shot("crawl.png")
	csvHref, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector("#dl-csv").href`))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(csvHref)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if lines := strings.Count(string(b), "\n"); resp.StatusCode != 200 || lines != pages+1 {
		t.Errorf("CSV download %s: %d, %d lines, want %d", csvHref, resp.StatusCode, lines, pages+1)
	}

	// A malformed escape in the address is read as it is, not thrown.
	run("open a malformed address", chromedp.Navigate(base+"#crawl/%E0%A4%A"))
	waitText("#msg", "Could not read the crawl view", 10*time.Second)

	// A master started without a token: actions disabled, with the reason.
	addr := "127.0.0.1:" + strconv.Itoa(harness.FreePort(t))
	harness.StartProc(t, "master m9", "master", "--nats", m.Cluster.URL(), "--id", "m9", "--http", addr)
	harness.Eventually(t, 30*time.Second, "m9 serves the console", func() bool { return httpCode(t, "http://"+addr+"/") == 200 })
	run("open m9's console", chromedp.Navigate(br.front(addr)+"#spiders"))
	waitText("#auth-status", "Actions disabled", 10*time.Second)
	waitText("#auth-status", "--api-token-file", 1*time.Second)
	disabled, _ := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.querySelector("#spec-apply").disabled`))
	if !disabled {
		t.Error("m9 (no token) leaves the apply button enabled")
	}

	br.checkLoopback()
}

// consoleBrowser is headless chromium on a console, recording every
// request it makes twice over: the tab's network events (every frame) and a
// fetch gate (Fetch domain interception, enabled before the first
// navigation) that holds each request until it is let through, and fails
// any request off loopback so it never leaves the machine.
type consoleBrowser struct {
	t       *testing.T
	ctx     context.Context
	shotDir string

	mu        sync.Mutex
	requested []string // network.EventRequestWillBeSent
	gated     []string // fetch.EventRequestPaused
	blocked   []string // off loopback, failed by the gate
	gateErrs  []string // requests the gate could not answer
	served    []string // requests from the browser that the fronts received
}

// newConsoleBrowser starts chromium for t; it stops with the test.
// Screenshots go to a temporary folder; CRAWLMESH_SCREENSHOTS=docs/console
// (from the repository root) refreshes the README's.
func newConsoleBrowser(t *testing.T) *consoleBrowser {
	t.Helper()
	chrome := chromium(t)
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chrome), chromedp.NoSandbox, chromedp.Headless,
		chromedp.DisableGPU, chromedp.WindowSize(1100, 760), chromedp.Flag("no-proxy-server", true))
	actx, cancelA := chromedp.NewExecAllocator(t.Context(), opts...)
	t.Cleanup(cancelA)
	ctx, cancelC := chromedp.NewContext(actx)
	t.Cleanup(cancelC)
	ctx, cancelT := context.WithTimeout(ctx, 4*time.Minute)
	t.Cleanup(cancelT)
	b := &consoleBrowser{t: t, ctx: ctx, shotDir: t.TempDir()}
	// Listen opens the tab (chromedp enables its network domain then);
	// nothing has been requested yet: it shows about:blank.
	err := chromedp.Listen(ctx, func(ev any) {
		if e, ok := ev.(*network.EventRequestWillBeSent); ok {
			b.mu.Lock()
			b.requested = append(b.requested, e.Request.URL)
			b.mu.Unlock()
		}
	})
	if err != nil {
		t.Fatalf("start chromium %s: %v", chrome, err)
	}
	// The gate: subscribed before Fetch.enable so no paused request is
	// missed; its goroutine stops with the test, before the browser does.
	gctx, stopGate := context.WithCancel(ctx)
	paused := chromedp.Events(gctx, fetch.RequestPaused)
	var wg sync.WaitGroup
	t.Cleanup(func() { stopGate(); wg.Wait() })
	wg.Go(func() {
		for ev, err := range paused {
			if err != nil {
				return
			}
			b.mu.Lock()
			b.gated = append(b.gated, ev.Request.URL)
			off := !loopback(ev.Request.URL)
			if off {
				b.blocked = append(b.blocked, ev.Request.URL)
			}
			b.mu.Unlock()
			if off {
				_, err = chromedp.Call(gctx, fetch.FailRequest, fetch.FailRequestParams{RequestID: ev.RequestID, ErrorReason: network.ErrorReasonBlockedByClient})
			} else {
				_, err = chromedp.Call(gctx, fetch.ContinueRequest, fetch.ContinueRequestParams{RequestID: ev.RequestID})
			}
			if err != nil && gctx.Err() == nil {
				// Most often a request the page gave up meanwhile (a
				// navigation cancels a pending favicon.ico): logged only.
				b.mu.Lock()
				b.gateErrs = append(b.gateErrs, ev.Request.URL+": "+err.Error())
				b.mu.Unlock()
			}
		}
	})
	if _, err := chromedp.Call(ctx, fetch.Enable, fetch.EnableParams{Patterns: []*fetch.RequestPattern{{URLPattern: "*"}}}); err != nil {
		t.Fatalf("chromium: enable the fetch gate: %v", err)
	}
	if d := os.Getenv("CRAWLMESH_SCREENSHOTS"); d != "" {
		b.shotDir = filepath.Join("..", "..", d)
	}
	if err := os.MkdirAll(b.shotDir, 0o755); err != nil {
		t.Fatal(err)
	}
	return b
}

// loopback says whether u's host is this machine.
func loopback(u string) bool {
	pu, err := url.Parse(u)
	if err != nil {
		return false
	}
	h := pu.Hostname()
	if ip := net.ParseIP(h); ip != nil {
		return ip.IsLoopback()
	}
	return h == "localhost"
}

// front serves addr (a console) through a loopback reverse proxy that
// records every request the browser sends, so checkLoopback can prove the
// browser's records miss none; it returns the front's base URL.
func (b *consoleBrowser) front(addr string) string {
	target, _ := url.Parse("http://" + addr)
	rp := httputil.NewSingleHostReverseProxy(target)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.UserAgent(), "Chrome") { // not the test's own http.Get
			b.mu.Lock()
			b.served = append(b.served, "http://"+r.Host+r.URL.RequestURI())
			b.mu.Unlock()
		}
		rp.ServeHTTP(w, r)
	}))
	b.t.Cleanup(srv.Close)
	return srv.URL + "/"
}

// consoleToken makes an API token and the file a master reads it from
// (--api-token-file), as an operator keeps it.
func consoleToken(t *testing.T) (token, file string) {
	t.Helper()
	token = "console-token-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	file = filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(file, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return token, file
}

func (b *consoleBrowser) run(what string, acts ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	if err := chromedp.Do(b.ctx, acts...); err != nil {
		b.t.Fatalf("%s: %v", what, err)
	}
}

// clickRow clicks a button in a table the console re-renders on every
// refresh: when the row is replaced between finding the button and
// clicking it, Chromium answers "Could not find node with given id" (no
// click happened) and the button is found again, a few times at most.
func (b *consoleBrowser) clickRow(what, sel string) {
	b.t.Helper()
	var err error
	for range 5 {
		if err = chromedp.Do(b.ctx, chromedp.Click(chromedp.CSS(sel))); err == nil {
			return
		}
		if !strings.Contains(err.Error(), "Could not find node") {
			break
		}
	}
	b.t.Fatalf("%s: %v", what, err)
}

// text is the text of the first element matching a CSS selector, "" if none.
func (b *consoleBrowser) text(sel string) string {
	s, _ := chromedp.Run(b.ctx, chromedp.Evaluate[string](fmt.Sprintf(`(document.querySelector(%q)||{}).textContent||""`, sel)))
	return s
}

func (b *consoleBrowser) waitText(sel, want string, timeout time.Duration) string {
	b.t.Helper()
	var got string
	harness.Eventually(b.t, timeout, fmt.Sprintf("%s shows %q", sel, want), func() bool {
		got = b.text(sel)
		return strings.Contains(got, want)
	}, func() string { return "it shows " + strconv.Quote(got) + "; #msg: " + b.text("#msg") })
	return got
}

func (b *consoleBrowser) shot(name string) {
	b.t.Helper()
	png, err := chromedp.Run(b.ctx, chromedp.CaptureScreenshot())
	if err != nil {
		b.t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.WriteFile(filepath.Join(b.shotDir, name), png, 0o644); err != nil {
		b.t.Fatal(err)
	}
}

// The negative controls checkLoopback adds to the page: images on
// TEST-NET-1 (RFC 5737), never routed, and blocked by the gate anyway. The
// console's Content-Security-Policy (img-src 'self') stops the first in
// the page itself, before the network (the network events show it, the
// gate never sees it); the second is added with the policy bypassed, so
// only the gate stands between it and the network.
const (
	controlUnderCSP = "http://192.0.2.1/crawlmesh-negative-control.png?under-csp"
	controlNoCSP    = "http://192.0.2.1/crawlmesh-negative-control.png?csp-bypassed"
)

// addImage adds an image of src to the page and says whether it loaded
// or failed.
func (b *consoleBrowser) addImage(src string) string {
	b.t.Helper()
	got, err := chromedp.Run(b.ctx, chromedp.Evaluate[string](fmt.Sprintf(`new Promise((resolve) => {
		const img = new Image();
		img.onload = () => resolve("loaded");
		img.onerror = () => resolve("failed");
		img.src = %q;
		document.body.append(img);
	})`, src), chromedp.EvalAwaitPromise))
	if err != nil {
		b.t.Fatalf("add an image of %s: %v", src, err)
	}
	return got
}

// checkLoopback fails the test if the browser requested anything off
// loopback, if the gate missed a request the console received, or
// (negative controls) if images off loopback that the test adds to the
// page are not recorded, and blocked by the gate.
func (b *consoleBrowser) checkLoopback() {
	b.t.Helper()
	if got := b.addImage(controlUnderCSP); got != "failed" {
		b.t.Errorf("negative control: the image %s %s, want failed", controlUnderCSP, got)
	}
	if _, err := chromedp.Call(b.ctx, cdpage.SetBypassCSP, cdpage.SetBypassCSPParams{Enabled: true}); err != nil {
		b.t.Fatalf("bypass the page's CSP: %v", err)
	}
	b.run("reload without the page's CSP", chromedp.Reload())
	if got := b.addImage(controlNoCSP); got != "failed" {
		b.t.Errorf("negative control: the image %s %s, want failed", controlNoCSP, got)
	}
	// The gate fails a request before the page's onerror runs, and the
	// network events come before the answer to the evaluation: both
	// records are complete by now.
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.requested) < 10 {
		b.t.Fatalf("only %d requests seen: %v", len(b.requested), b.requested)
	}
	count := func(urls []string, u string) (n int) {
		for _, v := range urls {
			if v == u {
				n++
			}
		}
		return n
	}
	for what, urls := range map[string][]string{"network events": b.requested, "fetch gate": b.gated} {
		for _, u := range urls {
			if !loopback(u) && u != controlUnderCSP && u != controlNoCSP {
				b.t.Errorf("the browser requested %s, off loopback (%s)", u, what)
			}
		}
	}
	if n := count(b.requested, controlUnderCSP); n != 1 {
		b.t.Errorf("negative control: the network events recorded %s %d times, want once: the detector is blind", controlUnderCSP, n)
	}
	if n := count(b.requested, controlNoCSP); n != 1 {
		b.t.Errorf("negative control: the network events recorded %s %d times, want once: the detector is blind", controlNoCSP, n)
	}
	if n := count(b.gated, controlNoCSP); n != 1 {
		b.t.Errorf("negative control: the fetch gate recorded %s %d times, want once: the detector is blind", controlNoCSP, n)
	}
	if len(b.blocked) != 1 || b.blocked[0] != controlNoCSP {
		b.t.Errorf("the gate blocked %q, want only %s", b.blocked, controlNoCSP)
	}
	// Every request the fronts received went through the gate (as many
	// times). The network events miss some (chromium's own favicon.ico
	// requests, for one), so they are only counted.
	left := map[string]int{}
	for _, u := range b.gated {
		left[u]++
	}
	missed := 0
	for _, u := range b.served {
		if left[u] <= 0 {
			if missed++; missed <= 5 {
				b.t.Errorf("the console received %s from the browser, but the gate did not see it", u)
			}
		}
		left[u]--
	}
	if missed > 0 {
		b.t.Errorf("the gate missed %d of the %d requests the console received", missed, len(b.served))
	}
	if len(b.gateErrs) > 0 {
		b.t.Logf("the gate could not answer %d requests (gone meanwhile): %q", len(b.gateErrs), b.gateErrs)
	}
	b.t.Logf("%d requests through the gate (%d network events, with the 2 controls), %d received by the console; screenshots in %s",
		len(b.gated), len(b.requested), len(b.served), b.shotDir)
}

func httpCode(t *testing.T, u string) int {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// BenchmarkConsoleLoad: a master watching 1,000 simulated nodes (beating
// every second), its CPU for a window without consoles, then with 10
// consoles open on the nodes page (each polls /api/v1/nodes every 2 s, as
// the page does). Run with -benchtime 1x: the window sets the length.
func BenchmarkConsoleLoad(b *testing.B) {
	for range b.N {
		benchConsoleLoad(b, 1000, 10, 10*time.Second)
	}
}

func benchConsoleLoad(b *testing.B, nodes, consoles int, window time.Duration) {
	_, natsURL := natsServer(b, true, b.TempDir(), 0)
	addr := "127.0.0.1:" + strconv.Itoa(harness.FreePort(b))
	m := start(b, "master", "--nats", natsURL, "--id", "m1", "--http", addr, "--heartbeat-ttl", "3s", "--log-level", "warn")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var conns []*nats.Conn
	for range 8 {
		nc, err := nats.Connect(natsURL)
		if err != nil {
			b.Fatal(err)
		}
		defer nc.Close()
		conns = append(conns, nc)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		js, _ := jetstream.New(conns[0])
		if _, err := js.KeyValue(ctx, mesh.NodesBucket); err == nil {
			break
		}
		if time.Now().After(deadline) {
			b.Fatal("bucket nodes not created by the master")
		}
		time.Sleep(50 * time.Millisecond)
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	for i := range nodes {
		js, _ := jetstream.New(conns[i%len(conns)])
		nkv, err := js.KeyValue(ctx, mesh.NodesBucket)
		if err != nil {
			b.Fatal(err)
		}
		bt, err := heartbeat.New(nkv, "sim-"+strconv.Itoa(i), mesh.RoleWorker,
			heartbeat.WithInterval(time.Second), heartbeat.WithTTL(3*time.Second))
		if err != nil {
			b.Fatal(err)
		}
		if err := bt.Claim(ctx); err != nil {
			b.Fatal(err)
		}
		wg.Go(func() { _ = bt.Run(ctx) })
	}
	nodesURL := "http://" + addr + "/api/v1/nodes"
	harness.Eventually(b, 20*time.Second, "the master's view has every simulated node", func() bool {
		resp, err := http.Get(nodesURL)
		if err != nil {
			return false
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return strings.Count(string(body), `"online":true`) >= nodes
	})
	measure := func() float64 {
		c0, t0 := cpuSeconds(b, m.PID()), time.Now()
		time.Sleep(window)
		return (cpuSeconds(b, m.PID()) - c0) / time.Since(t0).Seconds() * 100
	}
	idle := measure()
	var polls, bytes atomicCounter
	pctx, stop := context.WithCancel(ctx)
	var pw sync.WaitGroup
	for i := range consoles {
		pw.Go(func() {
			// Staggered, as tabs opened at different moments are.
			time.Sleep(time.Duration(i) * 2 * time.Second / time.Duration(consoles))
			tick := time.NewTicker(2 * time.Second)
			defer tick.Stop()
			for {
				req, _ := http.NewRequestWithContext(pctx, "GET", nodesURL, nil)
				if resp, err := http.DefaultClient.Do(req); err == nil {
					n, _ := io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					polls.add(1)
					bytes.add(n)
				}
				select {
				case <-pctx.Done():
					return
				case <-tick.C:
				}
			}
		})
	}
	time.Sleep(2 * time.Second)
	p0 := polls.get()
	busy := measure()
	p1 := polls.get()
	stop()
	pw.Wait()
	b.ReportMetric(idle, "master-cpu-%-no-console")
	b.ReportMetric(busy, "master-cpu-%-10-consoles")
	b.ReportMetric(busy-idle, "console-cpu-%")
	b.ReportMetric(float64(p1-p0)/window.Seconds(), "polls/s")
	if p1 > 0 {
		b.ReportMetric(float64(bytes.get())/float64(polls.get())/1024, "KiB/poll")
	}
}

type atomicCounter struct {
	mu sync.Mutex
	n  int64
}

func (c *atomicCounter) add(d int64) { c.mu.Lock(); c.n += d; c.mu.Unlock() }
func (c *atomicCounter) get() int64  { c.mu.Lock(); defer c.mu.Unlock(); return c.n }
