package fetch_test

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/crawlmesh/crawlmesh/pkg/fetch"
)

// loginSite issues a fresh session per login; pages need a valid one: /p/
// answers 401 without it, /members/ redirects to exactly /login. expire()
// invalidates every session; with sticky the sessions it issues are
// already expired.
type loginSite struct {
	*recorder
	mu     sync.Mutex
	valid  map[string]bool
	logins atomic.Int32
	refuse bool // the login answers 401
	// refuseRedirect: a refused login redirects to the form, marked.
	refuseRedirect bool
	broken         bool // new sessions are born expired
}

func newLoginSite(t *testing.T) *loginSite {
	ls := &loginSite{recorder: newRecorder(t), valid: map[string]bool{}}
	ls.mux.HandleFunc("POST /login", func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil || r.PostForm.Get("password") != "pw-456" || ls.refuse {
			if ls.refuseRedirect {
				http.Redirect(w, r, "/login?error=1", http.StatusSeeOther)
				return
			}
			http.Error(w, "bad credentials", http.StatusUnauthorized)
			return
		}
		id := fmt.Sprintf("s%d", ls.logins.Add(1))
		ls.mu.Lock()
		ls.valid[id] = !ls.broken
		ls.mu.Unlock()
		http.SetCookie(w, &http.Cookie{Name: "sess", Value: id, Path: "/"})
		http.Redirect(w, r, "/account", http.StatusSeeOther)
	})
	session := func(r *http.Request) (string, bool) {
		ck, err := r.Cookie("sess")
		if err != nil {
			return "", false
		}
		ls.mu.Lock()
		defer ls.mu.Unlock()
		return ck.Value, ls.valid[ck.Value]
	}
	ls.mux.HandleFunc("/p/", func(w http.ResponseWriter, r *http.Request) {
		id, ok := session(r)
		if !ok {
			http.Error(w, "log in", http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "text/html")
		_, _ = io.WriteString(w, `<p class="s">`+id+`</p>`)
	})
	ls.mux.HandleFunc("/members/", func(w http.ResponseWriter, r *http.Request) {
		id, ok := session(r)
		if !ok {
			http.Redirect(w, r, "/login", http.StatusFound)
			return
		}
		w.Header().Set("Content-Type", "text/html")
		_, _ = io.WriteString(w, `<p class="s">`+id+`</p>`)
	})
	// As most sites do: the login URL with where to come back.
	ls.mux.HandleFunc("/next/", func(w http.ResponseWriter, r *http.Request) {
		id, ok := session(r)
		if !ok {
			http.Redirect(w, r, "/login?next="+url.QueryEscape(r.URL.Path), http.StatusFound)
			return
		}
		w.Header().Set("Content-Type", "text/html")
		_, _ = io.WriteString(w, `<p class="s">`+id+`</p>`)
	})
	return ls
}

func (ls *loginSite) expire() {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	clear(ls.valid)
}

func (ls *loginSite) spec(t *testing.T) *specT {
	return specFor(t, ls.URL, `
politeness: {robots_txt: false}
login:
  url: "`+ls.URL+`/login"
  form: {user: demo, password: "${env:SHOP_PASSWORD}"}
  relogin_on: [401]
items: [{selector: p.s, fields: {session: {css: ""}}}]
`)
}

func loginFetcher() *fetch.Fetcher {
	return fetch.New(fetch.Config{Getenv: env(map[string]string{"SHOP_PASSWORD": "pw-456"})}, nil)
}

func sessionOf(t *testing.T, p *fetch.Page) string {
	t.Helper()
	if len(p.Items) != 1 {
		t.Fatalf("items %v", p.Items)
	}
	return p.Items[0]["session"].(string)
}

// Concurrent first tasks of a crawl log in once; another crawl logs in
// with a jar of its own; EndCrawl forgets the session.
func TestLoginOncePerCrawl(t *testing.T) {
	ls := newLoginSite(t)
	sp := ls.spec(t)
	f := loginFetcher()
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if _, err := f.Prepare(t.Context(), sp, "a", ls.URL+"/p/1", nil); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if n := ls.logins.Load(); n != 1 {
		t.Fatalf("%d logins for 8 concurrent first tasks of one crawl, want 1", n)
	}
	pa, err := f.FetchWith(t.Context(), sp, "a", ls.URL+"/p/1", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Prepare(t.Context(), sp, "b", ls.URL+"/p/1", nil); err != nil {
		t.Fatal(err)
	}
	pb, err := f.FetchWith(t.Context(), sp, "b", ls.URL+"/p/1", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if a, b := sessionOf(t, pa), sessionOf(t, pb); a != "s1" || b != "s2" {
		t.Errorf("crawl a used session %s, crawl b %s; want s1 and s2 (no shared jar)", a, b)
	}
	f.EndCrawl("a")
	if _, err := f.Prepare(t.Context(), sp, "a", ls.URL+"/p/1", nil); err != nil {
		t.Fatal(err)
	}
	if n := ls.logins.Load(); n != 3 {
		t.Errorf("%d logins, want 3 (after EndCrawl the crawl logs in again)", n)
	}
}

// A page answering 401 (relogin_on) or redirecting to the login URL makes
// the worker log in again and fetch the page once more, in one attempt.
func TestRelogin(t *testing.T) {
	for _, path := range []string{"/p/1", "/members/1", "/next/1"} {
		t.Run(strings.Trim(path, "/"), func(t *testing.T) {
			ls := newLoginSite(t)
			sp := ls.spec(t)
			f := loginFetcher()
			if _, err := f.Prepare(t.Context(), sp, "a", ls.URL+path, nil); err != nil {
				t.Fatal(err)
			}
			ls.expire()
			p, err := f.FetchWith(t.Context(), sp, "a", ls.URL+path, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			if s := sessionOf(t, p); s != "s2" || p.URL != ls.URL+path {
				t.Errorf("page %s with session %s, want %s with s2", p.URL, s, ls.URL+path)
			}
			if n := ls.count("/login"); n != 4 {
				t.Errorf("%d requests to /login, want 4 (login and relogin, each a GET of the form and its POST; the redirect to it is not followed)", n)
			}
			if n := ls.count(path); n != 2 {
				t.Errorf("%d requests of %s, want 2", n, path)
			}
		})
	}
}

// A session that is expired again right after a new login is a transient
// failure of the attempt, not a loop.
func TestReloginSecondExpiryTransient(t *testing.T) {
	ls := newLoginSite(t)
	ls.broken = true
	sp := ls.spec(t)
	f := loginFetcher()
	if _, err := f.Prepare(t.Context(), sp, "a", ls.URL+"/p/1", nil); err != nil {
		t.Fatal(err)
	}
	_, err := f.FetchWith(t.Context(), sp, "a", ls.URL+"/p/1", nil, nil)
	if fe := fetchErr(t, err); !fe.Transient || fe.CrawlLevel {
		t.Errorf("err = %+v, want transient", fe)
	}
	if n, m := ls.logins.Load(), ls.count("/p/1"); n != 2 || m != 2 {
		t.Errorf("%d logins and %d page requests, want 2 and 2", n, m)
	}
}

// A refused login fails the crawl, without the password in the error; so
// does one sent back to the login form (with a query saying why).
func TestLoginRefusedRedirect(t *testing.T) {
	ls := newLoginSite(t)
	ls.refuse, ls.refuseRedirect = true, true
	_, err := loginFetcher().Prepare(t.Context(), ls.spec(t), "a", ls.URL+"/p/1", nil)
	if fe := fetchErr(t, err); fe.Reason != "login" || !fe.CrawlLevel || fe.Status != http.StatusSeeOther {
		t.Errorf("err = %+v, want CrawlLevel Reason login status 303", fe)
	}
	// It says where the site sent the crawler, without the query.
	want := "status 303 sent the crawler back to the login form (/login): check login.form"
	if !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "error=1") || strings.Contains(err.Error(), "pw-456") {
		t.Errorf("err %q, want it to say %q, without the query or a form value", err, want)
	}
}

func TestLoginRefused(t *testing.T) {
	ls := newLoginSite(t)
	ls.refuse = true
	sp := ls.spec(t)
	f := loginFetcher()
	_, err := f.Prepare(t.Context(), sp, "a", ls.URL+"/p/1", nil)
	fe := fetchErr(t, err)
	if fe.Reason != "login" || !fe.CrawlLevel || fe.Transient || fe.Status != 401 {
		t.Errorf("err = %+v, want CrawlLevel Reason login status 401", fe)
	}
	want := "login to " + ls.URL + "/login failed: status 401"
	if !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "pw-456") {
		t.Errorf("err %q, want it to say %q and hold no form value", err, want)
	}
	if n := ls.count("/p/1"); n != 0 {
		t.Errorf("page fetched %d times after a refused login", n)
	}
}

// Tasks of one crawl that all find the session expired log in again once:
// a relogin another task did since a request started counts.
func TestReloginSingleFlight(t *testing.T) {
	ls := newLoginSite(t)
	sp := ls.spec(t)
	f := loginFetcher()
	if _, err := f.Prepare(t.Context(), sp, "a", ls.URL+"/p/1", nil); err != nil {
		t.Fatal(err)
	}
	ls.expire()
	var wg sync.WaitGroup
	for i := range 6 {
		wg.Go(func() {
			p, err := f.FetchWith(t.Context(), sp, "a", fmt.Sprintf("%s/p/%d", ls.URL, i), nil, nil)
			if err != nil {
				t.Error(err)
				return
			}
			if s := sessionOf(t, p); s != "s2" {
				t.Errorf("session %s, want s2", s)
			}
		})
	}
	wg.Wait()
	if n := ls.logins.Load(); n != 2 {
		t.Errorf("%d logins, want 2 (the first, and one relogin for 6 tasks)", n)
	}
}

// A hostile site that sets 50 cookies of 4,000 bytes on each page, each
// page on a path of its own, cannot grow a crawl's jar without bound: past
// maxHostCookies a host's new cookies are dropped, while the session
// cookie set before is still sent and still updated (review: 1 GB at
// 3,000 pages).
func TestCookieJarBounded(t *testing.T) {
	s := newRecorder(t)
	var sessSeen atomic.Int32
	s.mux.HandleFunc("/login", func(w http.ResponseWriter, r *http.Request) {
		http.SetCookie(w, &http.Cookie{Name: "sess", Value: "s1", Path: "/"})
		w.Header().Set("Content-Type", "text/html")
		_, _ = io.WriteString(w, "<p>in</p>")
	})
	big := strings.Repeat("x", 4000)
	s.mux.HandleFunc("/ck/", func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(strings.Trim(strings.TrimPrefix(r.URL.Path, "/ck/"), "/"))
		if ck, err := r.Cookie("sess"); err == nil && ck.Value == "s1" {
			sessSeen.Add(1)
		}
		for i := range 50 {
			http.SetCookie(w, &http.Cookie{Name: fmt.Sprintf("c%d_%d", n, i), Value: big, Path: fmt.Sprintf("/ck/%d/", n)})
		}
		w.Header().Set("Content-Type", "text/html")
		_, _ = fmt.Fprintf(w, `<a href="/ck/%d/">a</a><a href="/ck/%d/">b</a>`, 2*n+1, 2*n+2)
	})
	s.mux.HandleFunc("/rotate", func(w http.ResponseWriter, r *http.Request) {
		http.SetCookie(w, &http.Cookie{Name: "sess", Value: "s2", Path: "/"})
		w.Header().Set("Content-Type", "text/html")
		_, _ = io.WriteString(w, "<p>rotated</p>")
	})
	s.html("/check", "<p>check</p>")
	sp := specFor(t, s.URL, "politeness: {robots_txt: false}\n")
	f := fetch.New(fetch.Config{}, nil)
	fetchPage := func(path string) {
		t.Helper()
		if _, err := f.FetchWith(t.Context(), sp, "c", s.URL+path, nil, nil); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
	}
	fetchPage("/login")
	const pages = 40 // 2,000 cookies offered
	for n := range pages {
		fetchPage(fmt.Sprintf("/ck/%d/", n))
	}
	if n := fetch.JarLen(f, "c"); n != fetch.MaxHostCookies {
		t.Errorf("jar keeps %d cookies, want the bound %d", n, fetch.MaxHostCookies)
	}
	// The jar itself holds no more than counted.
	held := 0
	for n := range pages {
		u, _ := url.Parse(fmt.Sprintf("%s/ck/%d/", s.URL, n))
		for _, ck := range fetch.JarCookies(f, "c", u) {
			if strings.HasPrefix(ck.Name, fmt.Sprintf("c%d_", n)) {
				held++
			}
		}
	}
	if held != fetch.MaxHostCookies-1 {
		t.Errorf("jar holds %d of the site's cookies, want %d (the bound, less the session cookie)", held, fetch.MaxHostCookies-1)
	}
	if got := int(sessSeen.Load()); got != pages {
		t.Errorf("session cookie sent on %d of %d pages", got, pages)
	}
	// An update of a kept cookie is taken at the bound.
	fetchPage("/rotate")
	fetchPage("/check")
	reqs := s.requests()
	if last := reqs[len(reqs)-1]; last.path != "/check" || !strings.Contains(last.cookie, "sess=s2") {
		t.Errorf("after the session cookie's update, %s carried %.80q, want sess=s2", last.path, last.cookie)
	}
}

// The crawl's jar keeps at most maxJarCookies over all hosts, and expired
// cookies make room.
func TestCookieJarBoundedPerCrawl(t *testing.T) {
	f := fetch.New(fetch.Config{}, nil)
	set := func(host string, cs ...*http.Cookie) {
		fetch.SetJarCookies(f, "c", &url.URL{Scheme: "http", Host: host, Path: "/"}, cs)
	}
	hosts := fetch.MaxJarCookies/fetch.MaxHostCookies + 2
	for h := range hosts {
		for i := range fetch.MaxHostCookies {
			set(fmt.Sprintf("h%d.example.com", h), &http.Cookie{Name: fmt.Sprintf("n%d", i), Value: "v", Path: "/"})
		}
	}
	if n := fetch.JarLen(f, "c"); n != fetch.MaxJarCookies {
		t.Fatalf("jar keeps %d cookies, want the bound %d", n, fetch.MaxJarCookies)
	}
	// Full: a new cookie is dropped, an update and a deletion are taken.
	last := &url.URL{Scheme: "http", Host: fmt.Sprintf("h%d.example.com", hosts-1), Path: "/"}
	set(last.Host, &http.Cookie{Name: "late", Value: "v", Path: "/"})
	first := &url.URL{Scheme: "http", Host: "h0.example.com", Path: "/"}
	set(first.Host, &http.Cookie{Name: "n0", Value: "updated", Path: "/"}, &http.Cookie{Name: "n1", MaxAge: -1, Path: "/"})
	got := map[string]string{}
	for _, ck := range fetch.JarCookies(f, "c", first) {
		got[ck.Name] = ck.Value
	}
	if got["n0"] != "updated" || got["n1"] != "" || len(got) != fetch.MaxHostCookies-1 {
		t.Errorf("h0 cookies: n0=%q, n1 kept %v, %d in all", got["n0"], got["n1"] != "", len(got))
	}
	for _, ck := range fetch.JarCookies(f, "c", last) {
		if ck.Name == "late" {
			t.Errorf("a cookie past the bound was kept")
		}
	}
	// A cookie over 4 KB is dropped, even as an update.
	set(first.Host, &http.Cookie{Name: "n0", Value: strings.Repeat("x", 4096), Path: "/"})
	for _, ck := range fetch.JarCookies(f, "c", first) {
		if ck.Name == "n0" && ck.Value != "updated" {
			t.Errorf("a cookie of %d bytes replaced n0", len(ck.Value))
		}
	}
	// The deletion made room for one.
	set(last.Host, &http.Cookie{Name: "late", Value: "v", Path: "/"})
	if n := fetch.JarLen(f, "c"); n != fetch.MaxJarCookies {
		t.Errorf("jar keeps %d cookies, want %d", n, fetch.MaxJarCookies)
	}
	// Expired cookies make room too: n2, kept, is updated to expire.
	expires := time.Now().Add(time.Millisecond)
	set(first.Host, &http.Cookie{Name: "n2", Value: "v", Path: "/", Expires: expires})
	time.Sleep(time.Until(expires) + time.Millisecond) // a wall-clock expiry, not another goroutine
	set(last.Host, &http.Cookie{Name: "later", Value: "v", Path: "/"})
	found := false
	for _, ck := range fetch.JarCookies(f, "c", last) {
		found = found || ck.Name == "later"
	}
	if !found || fetch.JarLen(f, "c") != fetch.MaxJarCookies {
		t.Errorf("an expired cookie did not make room: later kept %v, %d in the jar", found, fetch.JarLen(f, "c"))
	}
}
