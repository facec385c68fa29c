package shopsite

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/temoto/robotstxt"

	"github.com/crawlmesh/crawlmesh/pkg/sitemap"
)

// shopper is a plain net/http client with the spec's settings, each of
// which a test can drop.
type shopper struct {
	t    *testing.T
	base string
	c    *http.Client
	ua   string
	key  string
}

func newShopper(t *testing.T, s *Site, base string, eur bool) *shopper {
	jar, _ := cookiejar.New(nil)
	u, _ := url.Parse(base)
	if eur {
		jar.SetCookies(u, []*http.Cookie{{Name: "currency", Value: "EUR", Path: "/"}})
	}
	return &shopper{t: t, base: base, ua: UserAgent, key: s.Options().APIKey,
		c: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

func (sh *shopper) do(method, uri string, form url.Values) (*http.Response, string) {
	sh.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, _ := http.NewRequest(method, sh.base+uri, body)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	req.Header.Set("User-Agent", sh.ua)
	if sh.key != "" {
		req.Header.Set("X-Api-Key", sh.key)
	}
	resp, err := sh.c.Do(req)
	if err != nil {
		sh.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func (sh *shopper) get(uri string) (*http.Response, string) { return sh.do(http.MethodGet, uri, nil) }

func (sh *shopper) login(user, password string) *http.Response {
	resp, _ := sh.do(http.MethodPost, "/login", url.Values{"user": {user}, "password": {password}})
	return resp
}

func wantViolation(t *testing.T, s *Site, substr string) {
	t.Helper()
	if !slices.ContainsFunc(s.Violations(), func(v string) bool { return strings.Contains(v, substr) }) {
		t.Errorf("no violation mentions %q: %q", substr, s.Violations())
	}
}

func TestUserAgent(t *testing.T) {
	s, base := startSite(t, Options{})
	sh := newShopper(t, s, base, true)
	for _, ua := range []string{"Go-http-client/1.1", "Mozilla/5.0 (compatible; shopbot/2.1)", "shopbot", "ShopBot/2.1"} {
		sh.ua = ua
		for _, uri := range []string{"/", "/robots.txt", "/sitemap_index.xml"} {
			if resp, _ := sh.get(uri); resp.StatusCode != 403 {
				t.Errorf("%q %s: %d, want 403", ua, uri, resp.StatusCode)
			}
		}
	}
	if n := len(s.Violations()); n != 12 {
		t.Errorf("%d violations, want 12: %q", n, s.Violations())
	}
	sh.ua = UserAgent
	if resp, _ := sh.get("/"); resp.StatusCode != 200 {
		t.Errorf("right UA: %d", resp.StatusCode)
	}
}

func TestAPIKey(t *testing.T) {
	s, base := startSite(t, Options{APIKey: "the-key"})
	sh := newShopper(t, s, base, true)
	sh.key = ""
	if resp, _ := sh.get("/api/products?page=1"); resp.StatusCode != 401 {
		t.Errorf("no key: %d", resp.StatusCode)
	}
	wantViolation(t, s, "without X-Api-Key")
	sh.key = "nope"
	if resp, _ := sh.get("/api/products?page=2"); resp.StatusCode != 401 {
		t.Errorf("wrong key: %d", resp.StatusCode)
	}
	wantViolation(t, s, "wrong X-Api-Key")
	s.Reset()
	sh.key = "the-key"
	next := "/api/products?page=1"
	var names []any
	for pages := 0; next != ""; pages++ {
		resp, body := sh.get(next)
		ct := resp.Header.Get("Content-Type")
		if resp.StatusCode != 200 || !strings.Contains(ct, "json") {
			t.Fatalf("%s: %d %s", next, resp.StatusCode, ct)
		}
		var page struct {
			Products []map[string]any
			Next     *string
		}
		if err := json.Unmarshal([]byte(body), &page); err != nil {
			t.Fatal(err)
		}
		for _, p := range page.Products {
			names = append(names, p["name"])
		}
		next = ""
		if page.Next != nil {
			next = *page.Next
		}
		if pages > apiPages {
			t.Fatal("next never ends")
		}
	}
	if len(names) != apiPages*apiPerPage || names[3] != nil || names[5] != "" {
		t.Errorf("names %v", names)
	}
	if resp, _ := sh.get("/api/products?page=4"); resp.StatusCode != 404 {
		t.Errorf("page 4: %d", resp.StatusCode)
	}
	if v := s.Violations(); len(v) != 1 || !strings.Contains(v[0], "unknown API page") {
		t.Errorf("violations %q", v)
	}
}

func TestLoginAndExpiry(t *testing.T) {
	s, base := startSite(t, Options{User: "u", Password: "pw", SessionPages: 3})
	sh := newShopper(t, s, base, true)
	if resp, _ := sh.get("/c/tools"); resp.StatusCode != 401 {
		t.Errorf("no session /c/tools: %d", resp.StatusCode)
	}
	if resp, _ := sh.get("/members/"); resp.StatusCode != 302 || resp.Header.Get("Location") != "/login" {
		t.Errorf("no session /members/: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	if resp := sh.login("u", "wrong"); resp.StatusCode != 403 {
		t.Errorf("wrong password: %d", resp.StatusCode)
	}
	wantViolation(t, s, "wrong credentials")
	resp := sh.login("u", "pw")
	if resp.StatusCode != 303 || resp.Header.Get("Location") != "/account" || len(resp.Cookies()) != 1 || resp.Cookies()[0].Name != SessionCookie {
		t.Fatalf("login: %d %v", resp.StatusCode, resp.Cookies())
	}
	// The account page and redirect hops do not use the session.
	for _, uri := range []string{"/account", "/p/old-5", "/p/legacy-6"} {
		if resp, _ := sh.get(uri); resp.StatusCode >= 400 {
			t.Errorf("%s: %d", uri, resp.StatusCode)
		}
	}
	for _, uri := range []string{"/c/tools", "/p/1", "/members/p/25"} {
		if resp, body := sh.get(uri); resp.StatusCode != 200 || !strings.Contains(body, "<main>") {
			t.Errorf("%s with a session: %d", uri, resp.StatusCode)
		}
	}
	// Three pages used the session up: each section says so its way.
	for uri, want := range map[string]int{"/p/2": 401, "/c/garden": 401, "/members/p/26": 302, "/members/": 302, "/p/old-5": 401} {
		if resp, _ := sh.get(uri); resp.StatusCode != want {
			t.Errorf("%s expired: %d, want %d", uri, resp.StatusCode, want)
		}
	}
	sh.login("u", "pw")
	if resp, _ := sh.get("/p/2"); resp.StatusCode != 200 {
		t.Errorf("after relogin: %d", resp.StatusCode)
	}
	if s.Logins() != 2 {
		t.Errorf("logins %d", s.Logins())
	}
}

func TestCurrency(t *testing.T) {
	s, base := startSite(t, Options{SessionPages: 100})
	eur, usd := newShopper(t, s, base, true), newShopper(t, s, base, false)
	eur.login(s.Options().User, s.Options().Password)
	usd.login(s.Options().User, s.Options().Password)
	var want ExpectedItem
	for _, it := range s.Expected(base) {
		if it.URL == base+"/p/12" {
			want = it
		}
	}
	_, e := eur.get("/p/12")
	if !strings.Contains(e, "Price: "+want.Data["price"].(string)+" EUR") || !strings.Contains(e, "Salt &amp; Pepper") {
		t.Errorf("EUR page does not show Expected's price %v:\n%s", want.Data["price"], e)
	}
	if len(s.Violations()) != 0 {
		t.Errorf("violations %q", s.Violations())
	}
	_, u := usd.get("/p/12")
	if !strings.Contains(u, " USD</p>") || strings.Contains(u, want.Data["price"].(string)) {
		t.Errorf("no cookie: not USD or same price:\n%s", u)
	}
	wantViolation(t, s, "currency=EUR")
}

// TestTraps requests each thing a correct crawl must not, one at a time.
func TestTraps(t *testing.T) {
	s, base := startSite(t, Options{SessionPages: 1000})
	sh := newShopper(t, s, base, true)
	sh.login(s.Options().User, s.Options().Password)
	for uri, want := range map[string]string{
		"/p/clearance":                   "nofollow",
		"/p/clearance-2":                 "nofollow",
		"/p/secret-1":                    "robots.txt",
		"/p/secret-2":                    "robots.txt",
		"/cart?add=3":                    "links.deny",
		"/p/8?ref=home&add=8":            "add-to-cart",
		"/p/3?utm_source=x&utm_medium=y": "(strip_query): utm_medium, utm_source",
		"/p/4?sid=123":                   "(strip_query): sid",
		"/p/1?page=2":                    "unexpected query",
		"/blog/welcome":                  "links.allow",
		"/c/archive":                     "footer",
		"/p/50":                          "footer",
		"/img/p1.jpg":                    "404",
		"/c/tools?page=3":                "404",
		"/p/51":                          "404",
		"/p/01":                          "404",
		"/members/p/1":                   "404",
	} {
		s.Reset()
		sh.login(s.Options().User, s.Options().Password)
		sh.get(uri)
		if v := s.Violations(); len(v) != 1 || !strings.Contains(v[0], want) {
			t.Errorf("%s: violations %q, want one about %q", uri, v, want)
		}
	}
	s.Reset()
	sh.login(s.Options().User, s.Options().Password)
	sh.get("/p/1")
	sh.get("/p/1")
	wantViolation(t, s, "fetched twice")
	// Another name for the same server is outside allowed_domains.
	s.Reset()
	req, _ := http.NewRequest(http.MethodGet, base+"/robots.txt", nil)
	req.Host = strings.Replace(req.Host, "127.0.0.1", "localhost", 1)
	req.Header.Set("User-Agent", UserAgent)
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
	}
	wantViolation(t, s, "allowed_domains")
}

func TestParallelism(t *testing.T) {
	s := New(Options{})
	const n = 3
	var entered, release sync.WaitGroup
	entered.Add(n)
	release.Add(1)
	var done sync.WaitGroup
	for range n {
		done.Add(1)
		go func() {
			defer done.Done()
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			r.AddCookie(&http.Cookie{Name: "currency", Value: "EUR"})
			c := &call{s: s, r: r, w: &statusWriter{ResponseWriter: httptest.NewRecorder()}, rec: &Request{}}
			s.page(c, htmlType, func(bool) []byte {
				entered.Done()
				release.Wait() // all n are in flight at once
				return nil
			})
		}()
	}
	entered.Wait()
	release.Done()
	done.Wait()
	// Two over the limit of 1, and "/" answered three times.
	if v := s.Violations(); len(v) != 4 || !strings.Contains(v[0], "at once") {
		t.Errorf("violations %q", v)
	}
}

func TestRobots(t *testing.T) {
	s, base := startSite(t, Options{})
	_, body := newShopper(t, s, base, true).get("/robots.txt")
	rd, err := robotstxt.FromString(body)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(rd.Sitemaps, []string{base + "/sitemap_index.xml"}) {
		t.Errorf("sitemaps %v", rd.Sitemaps)
	}
	for _, tc := range []struct {
		agent, path string
		allowed     bool
	}{
		{"shopbot", "/p/1", true}, {"shopbot", "/c/tools", true}, {"shopbot", "/api/products?page=1", true},
		{"shopbot", "/p/secret-1", false}, {"shopbot", "/cart?add=1", false},
		{"*", "/p/1", false}, {"*", "/c/tools", false}, {"*", "/members/", false}, {"*", "/api/products?page=1", false},
		{"shop", "/", false},
	} {
		if got := rd.FindGroup(tc.agent).Test(tc.path); got != tc.allowed {
			t.Errorf("%s %s: allowed %v", tc.agent, tc.path, got)
		}
	}
}

func TestSitemaps(t *testing.T) {
	s, base := startSite(t, Options{})
	sh := newShopper(t, s, base, true)
	resp, _ := sh.get("/sitemaps/products.xml.gz")
	if resp.Header.Get("Content-Encoding") != "" || resp.Header.Get("Content-Type") != "application/gzip" {
		t.Errorf("gz child headers: %v", resp.Header)
	}
	var got []string
	err := sitemap.Walk(context.Background(), []string{base + "/sitemap_index.xml"}, func(_ context.Context, u string) (io.ReadCloser, error) {
		_, body := sh.get(strings.TrimPrefix(u, base))
		return io.NopCloser(strings.NewReader(body)), nil
	}, func(loc string) error { got = append(got, loc); return nil }, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	host := strings.TrimPrefix(base, "http://127.0.0.1:")
	want := []string{base + "/p/19", base + "/p/20", base + "/p/21", base + "/p/22", base + "/p/1",
		base + "/p/3?utm_source=sitemap", base + "/p/secret-2", base + "/cart?add=19", "http://localhost:" + host + "/p/1",
		base + "/", base + "/c/tools", base + "/c/garden", base + "/c/kitchen", base + "/members/"}
	if !slices.Equal(got, want) {
		t.Errorf("sitemap URLs:\n%s", strings.Join(got, "\n"))
	}
	if v := s.Violations(); len(v) != 0 {
		t.Errorf("violations %q", v)
	}
}

// TestNoSecrets: the password and key never reach the log, even from a
// crawler that leaks them into queries, headers and field names.
func TestNoSecrets(t *testing.T) {
	opts := Options{Password: "pa55-w0rd/x", APIKey: "key-8c1e"}
	s, base := startSite(t, opts)
	crawl(t, s, base, nil)
	sh := newShopper(t, s, base, true)
	sh.login("crawler", "wrong-"+opts.Password)
	sh.do(http.MethodPost, "/login", url.Values{opts.Password: {"x"}, "user": {opts.APIKey}})
	sh.get("/p/1?sid=" + url.QueryEscape(opts.Password) + "&k=" + opts.APIKey)
	sh.ua = "curl/" + opts.Password
	sh.get("/api/products?key=" + opts.APIKey)
	sh.ua, sh.key = UserAgent, "wrong-"+opts.APIKey
	sh.get("/api/products?page=1")
	b, _ := json.Marshal(struct {
		R []Request
		V []string
	}{s.Requests(), s.Violations()})
	for _, secret := range []string{opts.Password, opts.APIKey, url.QueryEscape(opts.Password)} {
		if strings.Contains(string(b), secret) {
			t.Errorf("%q is in the log", secret)
		}
	}
	if !strings.Contains(string(b), `"APIKey":"ok"`) || !strings.Contains(string(b), `"Cookies":["currency","shop_session"]`) {
		t.Errorf("the log lacks what it should say")
	}
	y := s.SpecYAML(base)
	if strings.Contains(y, opts.Password) || strings.Contains(y, opts.APIKey) || !strings.Contains(y, "${env:"+EnvPassword+"}") {
		t.Errorf("the spec holds a secret or no ${env:} reference:\n%s", y)
	}
}

func TestDeterministic(t *testing.T) {
	s, base := startSite(t, Options{SessionPages: 1000})
	sh := newShopper(t, s, base, true)
	sh.login(s.Options().User, s.Options().Password)
	for _, uri := range []string{"/", "/c/tools?page=2", "/p/18", "/api/products?page=2", "/sitemaps/products.xml.gz", "/robots.txt"} {
		_, a := sh.get(uri)
		s.Reset()
		sh.login(s.Options().User, s.Options().Password)
		_, b := sh.get(uri)
		if a != b {
			t.Errorf("%s differs between requests", uri)
		}
	}
	if a, b := fmt.Sprint(s.Expected(base)), fmt.Sprint(New(Options{}).Expected(base)); a != b {
		t.Error("Expected differs between sites")
	}
}
