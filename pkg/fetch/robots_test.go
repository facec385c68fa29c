package fetch_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/crawlmesh/crawlmesh/pkg/fetch"
	"github.com/crawlmesh/crawlmesh/pkg/urlnorm"
)

// memStore is a RobotsStore in memory: what the KV store does, without
// NATS. It loads under its lock, so a key is fetched once however many
// Fetchers ask.
type memStore struct {
	mu      sync.Mutex
	files   map[string]fetch.RobotsFile
	fetches int
}

func (m *memStore) Load(ctx context.Context, key string, maxAge time.Duration, load func(context.Context) (fetch.RobotsFile, error)) (fetch.RobotsFile, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.files == nil {
		m.files = map[string]fetch.RobotsFile{}
	}
	if f, ok := m.files[key]; ok && time.Now().Before(f.ExpiresBy(maxAge)) {
		return f, nil
	}
	m.fetches++
	f, err := load(ctx)
	if err != nil {
		return f, err
	}
	m.files[key] = f
	return f, nil
}

func (m *memStore) file(key string) (fetch.RobotsFile, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	f, ok := m.files[key]
	return f, ok
}

// The product token of the user agent selects the group: a "*" group
// stricter than the spider's own does not apply to it, and a line that
// cannot be read does not void the file.
func TestRobotsProductToken(t *testing.T) {
	s := newRecorder(t)
	s.mux.HandleFunc("/robots.txt", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "Disallow: /before-any-agent\n"+
			"User-agent: *\nDisallow: /\n\n"+
			"User-agent: shopbot\nCrawl-delay: soon\nDisallow: /private\nCrawl-delay: 2\n"+
			"this line means nothing\n")
	})
	s.html("/public", "<p>ok</p>")
	s.html("/private/x", "<p>no</p>")
	shop := specFor(t, s.URL, "request: {user_agent: \"ShopBot/2.1 (+https://example.com/bot)\"}\n")
	dflt := specFor(t, s.URL, "")
	f := fetch.New(fetch.Config{}, nil)

	d, err := f.Prepare(t.Context(), shop, "", s.URL+"/public", nil)
	if err != nil || d != 2*time.Second {
		t.Errorf("Prepare: delay %v, %v; want shopbot's Crawl-delay 2s", d, err)
	}
	if _, err := f.FetchWith(t.Context(), shop, "", s.URL+"/public", nil, nil); err != nil {
		t.Errorf("shopbot /public: %v", err)
	}
	_, err = f.FetchWith(t.Context(), shop, "", s.URL+"/private/x", nil, nil)
	if fe := fetchErr(t, err); fe.Reason != "robots" || fe.Transient {
		t.Errorf("shopbot /private/x: %+v, want permanent robots", fe)
	}
	_, err = f.Fetch(t.Context(), dflt, s.URL+"/public")
	if fe := fetchErr(t, err); fe.Reason != "robots" {
		t.Errorf("crawlmesh /public: %+v, want robots (the * group disallows all)", fe)
	}
	if n := s.count("/private/x"); n != 0 {
		t.Errorf("disallowed page requested %d times", n)
	}
	if n := s.count("/robots.txt"); n != 2 {
		t.Errorf("robots.txt fetched %d times, want 2 (once per product token)", n)
	}
}

// A rule with an escaped unreserved character ("/%7ejoe") keeps the
// crawler out of the page a link names either way: links are canonical
// ("/~joe"), and the rule is compared decoded (RFC 9309 §2.2.2; found by
// review: both were fetched).
func TestRobotsEscapedUnreserved(t *testing.T) {
	s := newRecorder(t)
	s.mux.HandleFunc("/robots.txt", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "User-agent: *\nDisallow: /%7ejoe\n")
	})
	s.html("/~joe", "<p>private</p>")
	f := fetch.New(fetch.Config{}, nil)
	for _, link := range []string{s.URL + "/~joe", s.URL + "/%7Ejoe"} {
		canon, err := urlnorm.Canonical(link)
		if err != nil {
			t.Fatal(err)
		}
		_, err = f.Fetch(t.Context(), specFor(t, s.URL, ""), canon)
		if fe := fetchErr(t, err); fe.Reason != "robots" {
			t.Errorf("%s: %+v, want refused by robots.txt", link, fe)
		}
	}
	if n := s.count("/~joe"); n != 0 {
		t.Errorf("/~joe fetched %d times, want 0", n)
	}
}

// 4xx means allow all; 5xx and no answer mean disallow all for a minute,
// and the page is retried after that minute (transient), not dropped.
func TestRobotsStatus(t *testing.T) {
	for _, c := range []struct {
		status    int
		allowed   bool
		shortLife bool
	}{{404, true, false}, {401, true, false}, {500, false, true}, {503, false, true}, {429, false, true}} {
		s := newRecorder(t)
		s.mux.HandleFunc("/robots.txt", func(w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(c.status)
			_, _ = io.WriteString(w, "User-agent: *\nDisallow: /\n")
		})
		s.html("/", "<p>x</p>")
		store := &memStore{}
		f := fetch.New(fetch.Config{Robots: store}, nil)
		_, err := f.Fetch(t.Context(), specFor(t, s.URL, ""), s.URL+"/")
		if c.allowed && err != nil {
			t.Errorf("robots.txt %d: %v, want the page fetched", c.status, err)
		}
		if !c.allowed {
			// Its retry comes once the answer's minute is out, so that it
			// reads robots.txt again.
			if fe := fetchErr(t, err); !fe.Transient || fe.Reason != "robots-unreachable" || fe.RetryAfter <= time.Minute {
				t.Errorf("robots.txt %d: %+v, want transient robots-unreachable, retried after its minute", c.status, fe)
			}
			if want := fmt.Sprintf("(status %d)", c.status); !strings.Contains(err.Error(), want) {
				t.Errorf("robots.txt %d: %q does not say why: %s", c.status, err, want)
			}
			// Prepare, which the crawler calls before the page's permit,
			// says the same.
			if _, err := f.Prepare(t.Context(), specFor(t, s.URL, ""), "", s.URL+"/", nil); err == nil {
				t.Errorf("robots.txt %d: Prepare allowed the page", c.status)
			} else if fe := fetchErr(t, err); fe.Reason != "robots-unreachable" || fe.RetryAfter <= time.Minute {
				t.Errorf("robots.txt %d: Prepare: %+v", c.status, fe)
			}
			if n := s.count("/"); n != 0 {
				t.Errorf("robots.txt %d: page requested", c.status)
			}
		}
		file, ok := store.file(s.URL + " crawlmesh")
		if !ok || file.Status != c.status {
			t.Fatalf("robots.txt %d: stored %+v, %v", c.status, file, ok)
		}
		life := time.Until(file.Expires)
		if c.shortLife != (life <= time.Minute) || life <= 0 {
			t.Errorf("robots.txt %d: stored for %v", c.status, life)
		}
	}
}

// A host that does not answer: its pages' failure says why, not only that
// robots.txt cannot be read (a reviewer saw nothing else for a refused
// connection).
func TestRobotsNoAnswerSaysWhy(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + ln.Addr().String()
	ln.Close() // nothing listens there now
	_, err = fetch.New(fetch.Config{}, nil).Fetch(t.Context(), specFor(t, base, ""), base+"/")
	if fe := fetchErr(t, err); fe.Reason != "robots-unreachable" || !strings.Contains(err.Error(), "connection refused") {
		t.Errorf("robots.txt of a closed port: %v; want robots-unreachable saying connection refused", err)
	}
}

// An https:// URL on a plain-http site: the failure says so, not
// "network" alone (found by review).
func TestRobotsHTTPSOnPlainHTTPSaysWhy(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("x")) }))
	defer srv.Close()
	base := "https://" + strings.TrimPrefix(srv.URL, "http://")
	_, err := fetch.New(fetch.Config{}, nil).Fetch(t.Context(), specFor(t, base, ""), base+"/")
	if fe := fetchErr(t, err); fe.Reason != "robots-unreachable" || !strings.Contains(err.Error(), "(network: ") || strings.HasSuffix(err.Error(), "(network)") {
		t.Errorf("robots.txt over https of a plain-http site: %v; want robots-unreachable with the cause", err)
	}
	t.Log(err)
}

// robots.txt is fetched once for two workers sharing a store, and once
// per worker without one.
func TestRobotsShared(t *testing.T) {
	s := newRecorder(t)
	s.mux.HandleFunc("/robots.txt", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "User-agent: *\nDisallow: /no\n")
	})
	s.html("/", "<p>x</p>")
	sp := specFor(t, s.URL, "")
	store := &memStore{}
	var wg sync.WaitGroup
	for range 3 {
		f := fetch.New(fetch.Config{Robots: store}, nil)
		for range 3 {
			wg.Go(func() {
				if _, err := f.Fetch(t.Context(), sp, s.URL+"/"); err != nil {
					t.Error(err)
				}
			})
		}
	}
	wg.Wait()
	if n := s.count("/robots.txt"); n != 1 || store.fetches != 1 {
		t.Errorf("robots.txt fetched %d times (%d store loads) by 3 workers, want 1", n, store.fetches)
	}
}

// robots.txt follows redirects (to another path here) with the request
// settings.
func TestRobotsRedirect(t *testing.T) {
	s := newRecorder(t)
	s.mux.HandleFunc("/robots.txt", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/real-robots.txt", http.StatusMovedPermanently)
	})
	s.mux.HandleFunc("/real-robots.txt", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "User-agent: *\nDisallow: /no\n")
	})
	s.html("/no", "<p>x</p>")
	_, err := fetch.New(fetch.Config{}, nil).Fetch(t.Context(), specFor(t, s.URL, ""), s.URL+"/no")
	if fe := fetchErr(t, err); fe.Reason != "robots" {
		t.Errorf("err %+v, want robots", fe)
	}
}

// A lowered robots_ttl applies to answers kept already, in this worker's
// cache and in the shared store: a robots.txt changed by its site was
// not read again before the old TTL's hour was out (found by review).
func TestRobotsTTLLowered(t *testing.T) {
	s := newRecorder(t)
	s.mux.HandleFunc("/robots.txt", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "User-agent: *\nAllow: /\n")
	})
	s.html("/", "<p>x</p>")
	store := &memStore{}
	f := fetch.New(fetch.Config{Robots: store, RobotsTTL: time.Hour}, nil)
	sp := specFor(t, s.URL, "")
	for range 2 {
		if _, err := f.Fetch(t.Context(), sp, s.URL+"/"); err != nil {
			t.Fatal(err)
		}
	}
	if n := s.count("/robots.txt"); n != 1 {
		t.Fatalf("robots.txt read %d times within its hour, want once", n)
	}
	f.SetLive(fetch.Live{RobotsTTL: time.Nanosecond}) // what config set robots_ttl does
	if _, err := f.Fetch(t.Context(), sp, s.URL+"/"); err != nil {
		t.Fatal(err)
	}
	// (A TTL of 1ns makes even the new answer stale at once, so the
	// page's second robots.txt check of the fetch may read it again.)
	if n := s.count("/robots.txt"); n < 2 {
		t.Errorf("robots.txt read %d times after robots_ttl was lowered below its age, want it read again", n)
	}
}

// A robots.txt redirect to a host outside allowed_domains is followed (its
// rules apply) but that host gets none of the spider's headers or cookies,
// nor a user agent built from ${env:…}: they may be credentials (review).
func TestRobotsRedirectOutsideAllowedDomains(t *testing.T) {
	other := newRecorder(t)
	other.mux.HandleFunc("/robots.txt", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "User-agent: *\nDisallow: /no\n")
	})
	_, port, _ := net.SplitHostPort(other.Listener.Addr().String())
	s := newRecorder(t)
	s.mux.HandleFunc("/robots.txt", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "http://localhost:"+port+"/robots.txt", http.StatusFound)
	})
	s.html("/no", "<p>x</p>")
	sp := specFor(t, s.URL, `
request:
  user_agent: "shopbot/1 (${env:UA_TAG})"
  headers: {X-Api-Key: "${env:SHOP_KEY}"}
  cookies: {token: "${env:SHOP_KEY}"}
`)
	f := fetch.New(fetch.Config{Getenv: env(map[string]string{"SHOP_KEY": "k-secret", "UA_TAG": "tag-secret"})}, nil)
	_, err := f.Fetch(t.Context(), sp, s.URL+"/no")
	if fe := fetchErr(t, err); fe.Reason != "robots" {
		t.Errorf("err %+v, want robots: the redirected robots.txt's rules apply", fe)
	}
	if r := s.requests(); len(r) != 1 || r[0].key != "k-secret" || !strings.Contains(r[0].cookie, "k-secret") {
		t.Errorf("the spider's own host saw %+v, want its robots.txt with the spider's settings", r)
	}
	reqs := other.requests()
	if len(reqs) != 1 {
		t.Fatalf("the host outside allowed_domains saw %+v, want its robots.txt once", reqs)
	}
	if r := reqs[0]; r.key != "" || r.cookie != "" || strings.Contains(r.ua, "secret") {
		t.Errorf("the host outside allowed_domains got key %q, cookie %q, UA %q", r.key, r.cookie, r.ua)
	}
}
