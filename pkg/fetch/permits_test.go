package fetch_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/crawlmesh/crawlmesh/pkg/fetch"
	"github.com/crawlmesh/crawlmesh/pkg/mesh"
	"github.com/crawlmesh/crawlmesh/pkg/politeness"
	"github.com/crawlmesh/crawlmesh/streams"
	"github.com/crawlmesh/crawlmesh/streams/streamstest"
)

// countingGate is a real politeness gate with parallelism 1 per host that
// counts the permits it gives.
type countingGate struct {
	g        *politeness.Gate
	mu       sync.Mutex
	acquired map[string]int
}

func newCountingGate(t *testing.T) *countingGate {
	t.Helper()
	_, js := streamstest.Start(t, streams.Options{})
	g := politeness.New(streamstest.Bucket(t, js, mesh.HostsBucket), streamstest.Bucket(t, js, mesh.ThrottleBucket), "w", 10*time.Second, nil)
	if err := g.Measure(t.Context()); err != nil {
		t.Fatal(err)
	}
	return &countingGate{g: g, acquired: map[string]int{}}
}

func (c *countingGate) gate(ctx context.Context, host string) (*politeness.Permit, error) {
	p, err := c.g.Acquire(ctx, host, politeness.Limits{Parallelism: 1}, nil, nil)
	if err == nil {
		c.mu.Lock()
		c.acquired[host]++
		c.mu.Unlock()
	}
	return p, err
}

func (c *countingGate) total() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, v := range c.acquired {
		n += v
	}
	return n
}

// Every request — robots.txt, the login, the page, each redirect hop (to
// the same host and to another), the relogin and the refetch — takes a
// permit of its host, and every permit is released. With parallelism 1 a
// same-host redirect does not deadlock, and no two requests overlap.
func TestPermitsForEveryRequest(t *testing.T) {
	ls := newLoginSite(t)
	var inFlight, most atomic.Int32
	inner := ls.Config.Handler
	ls.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n := inFlight.Add(1); n > most.Load() {
			most.Store(n)
		}
		defer inFlight.Add(-1)
		time.Sleep(2 * time.Millisecond)
		inner.ServeHTTP(w, r)
	})
	other := strings.Replace(ls.URL, "127.0.0.1", "localhost", 1)
	ls.mux.HandleFunc("/robots.txt", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "User-agent: *\nDisallow: /private\n")
	})
	ls.mux.HandleFunc("/hop", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/hop2", http.StatusFound) })
	ls.mux.HandleFunc("/hop2", func(w http.ResponseWriter, r *http.Request) {
		if r.Host == strings.TrimPrefix(other, "http://") {
			http.Redirect(w, r, ls.URL+"/p/9", http.StatusFound)
			return
		}
		http.Redirect(w, r, other+"/hop2", http.StatusFound)
	})
	sp := parseSpec(t, `name: t
start_urls: ["`+ls.URL+`/"]
allowed_domains: ["127.0.0.1", "localhost"]
login:
  url: "`+ls.URL+`/login"
  form: {user: demo, password: "${env:SHOP_PASSWORD}"}
  relogin_on: [401]
`)
	f := loginFetcher()
	var released atomic.Int32
	fetch.SetReleaseHook(f, func(string, politeness.Outcome) { released.Add(1) })
	cg := newCountingGate(t)
	ctx, cancel := context.WithTimeout(t.Context(), 8*time.Second) // a leaked permit blocks for its 10 s lease
	defer cancel()
	page := func(u string) {
		t.Helper()
		if _, err := f.Prepare(ctx, sp, "c", u, cg.gate); err != nil {
			t.Fatal(err)
		}
		host := strings.TrimPrefix(ls.URL, "http://")
		permit, err := cg.gate(ctx, host)
		if err != nil {
			t.Fatal(err)
		}
		p, err := f.FetchWith(ctx, sp, "c", u, permit, cg.gate)
		if err != nil {
			t.Fatalf("%s: %v", u, err)
		}
		if len(p.URL) == 0 {
			t.Fatalf("%s: no page", u)
		}
	}
	page(ls.URL + "/hop") // /hop -> /hop2 -> localhost/hop2 (robots of localhost) -> /p/9
	ls.expire()
	page(ls.URL + "/p/1") // 401, relogin, refetch
	reqs := ls.requests()
	var paths []string
	for _, r := range reqs {
		paths = append(paths, r.method+" "+r.path)
	}
	// Each login reads its page (for a CSRF token) before it posts, and
	// follows the POST's redirect, as a browser does.
	want := "GET /robots.txt,GET /login,POST /login,GET /account,GET /hop,GET /hop2,GET /robots.txt,GET /hop2,GET /p/9,GET /p/1,GET /login,POST /login,GET /account,GET /p/1"
	if got := strings.Join(paths, ","); got != want {
		t.Errorf("requests\n got %s\nwant %s", got, want)
	}
	if a, r := cg.total(), int(released.Load()); a != len(reqs) || r != a {
		t.Errorf("%d requests, %d permits taken, %d released; want all equal", len(reqs), a, r)
	}
	if m := most.Load(); m > 1 {
		t.Errorf("%d requests in flight at once with parallelism 1", m)
	}
}

// Every path out of FetchWith releases its permits: errors included.
func TestPermitsReleasedOnErrors(t *testing.T) {
	s := newRecorder(t)
	s.mux.HandleFunc("/robots.txt", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "User-agent: *\nDisallow: /private\n")
	})
	s.mux.HandleFunc("/gone", http.NotFound)
	s.mux.HandleFunc("/busy", func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "busy", http.StatusServiceUnavailable)
	})
	s.mux.HandleFunc("/to-private", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/private/x", http.StatusFound)
	})
	s.mux.HandleFunc("/loop", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/loop", http.StatusFound) })
	s.mux.HandleFunc("/bin", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "image/png")
		_, _ = io.WriteString(w, "png")
	})
	sp := specFor(t, s.URL, "")
	f := fetch.New(fetch.Config{}, nil)
	var released atomic.Int32
	var outcomes []politeness.Outcome
	var mu sync.Mutex
	fetch.SetReleaseHook(f, func(_ string, o politeness.Outcome) {
		released.Add(1)
		mu.Lock()
		outcomes = append(outcomes, o)
		mu.Unlock()
	})
	cg := newCountingGate(t)
	ctx, cancel := context.WithTimeout(t.Context(), 8*time.Second)
	defer cancel()
	host := strings.TrimPrefix(s.URL, "http://")
	for _, path := range []string{"/gone", "/busy", "/to-private", "/loop", "/bin", "/private/y"} {
		_, err := f.Prepare(ctx, sp, "", s.URL+path, cg.gate)
		if path == "/private/y" {
			// Disallowed: refused before any permit for the page.
			if fe, ok := errors.AsType[*fetch.Error](err); !ok || fe.Reason != "robots" {
				t.Errorf("Prepare of a disallowed page: %v, want a robots error", err)
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		permit, err := cg.gate(ctx, host)
		if err != nil {
			t.Fatalf("%s: permit: %v (one was not released)", path, err)
		}
		if _, err := f.FetchWith(ctx, sp, "", s.URL+path, permit, cg.gate); err == nil {
			t.Errorf("%s: no error", path)
		}
	}
	if a, r := cg.total(), int(released.Load()); a != r {
		t.Errorf("%d permits taken, %d released", a, r)
	}
	mu.Lock()
	defer mu.Unlock()
	failed := 0
	for _, o := range outcomes {
		if o.Failed {
			failed++
		}
	}
	if failed != 1 {
		t.Errorf("%d failed outcomes (%+v), want 1 (the 503)", failed, outcomes)
	}
}
