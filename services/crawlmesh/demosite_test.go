package main

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/crawlmesh/crawlmesh/pkg/demosite"
	"github.com/crawlmesh/crawlmesh/pkg/spec"
)

func testCLI(stdout, stderr io.Writer) *cli {
	return &cli{getenv: func(string) string { return "" }, stdout: stdout, stderr: stderr}
}

// The demo site runs in-process on a loopback port 0, serves the bookshop
// until its context ends, then returns 0.
func TestDemoSiteServesUntilCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var stdout, stderr syncBuf
	code := make(chan int, 1)
	go func() {
		code <- run(ctx, []string{"demo-site", "--listen", "127.0.0.1:0"}, testCLI(&stdout, &stderr))
	}()
	addrRE := regexp.MustCompile(`addr=(127\.0\.0\.1:[0-9]+) base=(\S+)`)
	var addr, base string
	waitFor(t, 10*time.Second, "demo-site logs its address", func() bool {
		select {
		case c := <-code:
			t.Fatalf("demo-site exited with %d before serving:\n%s", c, stderr.String())
		default:
		}
		m := addrRE.FindStringSubmatch(stderr.String())
		if m == nil {
			return false
		}
		addr, base = m[1], m[2]
		return true
	})
	if base != "http://"+addr {
		t.Errorf("base = %q, want http://%s (the bound address when --base is not given)", base, addr)
	}
	get := func(path string) (int, string) {
		t.Helper()
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if c, body := get("/"); c != 200 || !strings.Contains(body, "catalogue/page-1.html") {
		t.Errorf("GET / = %d, want 200 with a link to the catalogue; body:\n%s", c, body)
	}
	if c, body := get("/book/7.html"); c != 200 || !strings.Contains(body, demosite.Price(7)) {
		t.Errorf("GET /book/7.html = %d, want 200 with price %s; body:\n%s", c, demosite.Price(7), body)
	}
	if c, body := get("/robots.txt"); c != 200 || !strings.Contains(body, "Disallow: /admin/") {
		t.Errorf("GET /robots.txt = %d %q, want the /admin/ rule", c, body)
	}
	if c, _ := get("/book/0.html"); c != 404 {
		t.Errorf("GET /book/0.html = %d, want 404", c)
	}

	cancel()
	select {
	case c := <-code:
		if c != 0 {
			t.Fatalf("demo-site exit code %d after cancel, want 0; stderr:\n%s", c, stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("demo-site did not stop within 10s of cancel")
	}
	if _, err := http.Get(base + "/"); err == nil {
		t.Error("the site still answers after demo-site returned")
	}
}

// --print-spec prints the spider for --base: it parses, starts at the base
// and allows exactly the base's host:port.
func TestDemoSitePrintSpec(t *testing.T) {
	for _, tt := range []struct {
		name, args, base string
	}{
		{"explicit base", "--print-spec --base http://demosite:8088", "http://demosite:8088"},
		{"base with slash", "--print-spec --base http://demosite:8088/", "http://demosite:8088"},
		{"from listen", "--listen 127.0.0.1:9099 --print-spec", "http://127.0.0.1:9099"},
		{"all interfaces", "--listen 0.0.0.0:9099 --print-spec", "http://127.0.0.1:9099"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr syncBuf
			args := append([]string{"demo-site"}, strings.Fields(tt.args)...)
			if c := run(t.Context(), args, testCLI(&stdout, &stderr)); c != 0 {
				t.Fatalf("exit %d; stderr:\n%s", c, stderr.String())
			}
			if got, want := stdout.String(), demosite.Spec(tt.base); got != want {
				t.Fatalf("printed spec differs from demosite.Spec(%q):\n%s", tt.base, got)
			}
			s, err := spec.Parse([]byte(stdout.String()))
			if err != nil {
				t.Fatalf("printed spec does not parse: %v", err)
			}
			host := strings.TrimPrefix(tt.base, "http://")
			if len(s.StartURLs) != 1 || s.StartURLs[0] != tt.base+"/" || len(s.AllowedDomains) != 1 || s.AllowedDomains[0] != host {
				t.Errorf("start_urls %v allowed_domains %v, want [%s/] and [%s]", s.StartURLs, s.AllowedDomains, tt.base, host)
			}
		})
	}
}

// TestDemoSiteSynthetic: --synthetic N serves the synthetic site that
// deploy/examples' spiders are written for (its README had nothing to
// serve it; found by review).
func TestDemoSiteSynthetic(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var stdout, stderr syncBuf
	code := make(chan int, 1)
	go func() {
		code <- run(ctx, []string{"demo-site", "--listen", "127.0.0.1:0", "--synthetic", "20"}, testCLI(&stdout, &stderr))
	}()
	addrRE := regexp.MustCompile(`synthetic site serving".*base=(\S+) pages=20`)
	var base string
	waitFor(t, 10*time.Second, "demo-site logs its address", func() bool {
		m := addrRE.FindStringSubmatch(stderr.String())
		if m != nil {
			base = m[1]
		}
		return m != nil
	})
	for path, want := range map[string]int{"/p/0.html": 200, "/p/19.html": 200, "/p/20.html": 404} {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want || want == 200 && !strings.Contains(string(b), `class="item"`) {
			t.Errorf("GET %s = %d, want %d with an item:\n%.200s", path, resp.StatusCode, want, b)
		}
	}
	cancel()
	if c := <-code; c != 0 {
		t.Errorf("demo-site exit %d after cancel", c)
	}
}

func TestDemoSiteUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"--print-spec", "--base", "ftp://demosite"},
		{"--print-spec", "--base", "http://demosite:8088/shop"},
		{"--print-spec", "--listen", "127.0.0.1:0"}, // the port is not known: --base is needed
		{"--listen", "nonsense"},
		{"extra"},
		{"--synthetic", "-1"},
		{"--synthetic", "5", "--print-spec", "--base", "http://demosite:8088"},
	} {
		var stdout, stderr syncBuf
		if c := run(t.Context(), append([]string{"demo-site"}, args...), testCLI(&stdout, &stderr)); c != 2 {
			t.Errorf("demo-site %v: exit %d, want 2 (usage); stderr:\n%s", args, c, stderr.String())
		}
	}
}

func TestHealthcheck(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/ok":
			_, _ = w.Write([]byte("ok\n"))
		case "/slow":
			select {
			case <-r.Context().Done():
			case <-time.After(5 * time.Second):
			}
		default:
			http.Error(w, "not ready", http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	dead := httptest.NewServer(http.NotFoundHandler())
	deadURL := dead.URL
	dead.Close() // a port nothing listens on any more

	for _, tt := range []struct {
		args []string
		want int
	}{
		{[]string{srv.URL + "/ok"}, 0},
		{[]string{srv.URL + "/unready"}, 1},
		{[]string{"--timeout", "200ms", srv.URL + "/slow"}, 1},
		{[]string{deadURL + "/ok"}, 1},
		{[]string{}, 2},
		{[]string{"127.0.0.1:8090/healthz"}, 2},
	} {
		var stdout, stderr syncBuf
		t0 := time.Now()
		if c := run(t.Context(), append([]string{"healthcheck"}, tt.args...), testCLI(&stdout, &stderr)); c != tt.want {
			t.Errorf("healthcheck %v: exit %d, want %d; stderr: %s", tt.args, c, tt.want, stderr.String())
		}
		if d := time.Since(t0); d > 3*time.Second {
			t.Errorf("healthcheck %v took %v: the timeout does not hold", tt.args, d)
		}
	}
}
