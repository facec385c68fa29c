package demosite

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/crawlmesh/crawlmesh/pkg/spec"
)

func get(t *testing.T, h http.Handler, path string) (int, string, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	body, _ := io.ReadAll(rec.Result().Body)
	return rec.Code, rec.Header().Get("Content-Type"), string(body)
}

func TestStatusCodes(t *testing.T) {
	h := Handler()
	cases := map[string]int{
		"/":                       200,
		"/robots.txt":             200,
		"/admin/stats.html":       200,
		"/catalogue/page-1.html":  200,
		"/catalogue/page-25.html": 200,
		"/book/1.html":            200,
		"/book/500.html":          200,
		"/catalogue/page-0.html":  404,
		"/catalogue/page-26.html": 404,
		"/catalogue/page-01.html": 404,
		"/catalogue/page-x.html":  404,
		"/catalogue/":             404,
		"/book/0.html":            404,
		"/book/501.html":          404,
		"/book/1":                 404,
		"/admin/":                 404,
		"/nope":                   404,
		"/index.html":             404,
	}
	for path, want := range cases {
		code, ct, _ := get(t, h, path)
		if code != want {
			t.Errorf("GET %s: status %d, want %d", path, code, want)
		}
		if code == 200 && path != "/robots.txt" && ct != "text/html; charset=utf-8" {
			t.Errorf("GET %s: Content-Type %q", path, ct)
		}
	}
}

func TestRobots(t *testing.T) {
	code, ct, body := get(t, Handler(), "/robots.txt")
	if code != 200 || !strings.HasPrefix(ct, "text/plain") {
		t.Fatalf("robots.txt: %d %q", code, ct)
	}
	if !strings.Contains(body, "User-agent: *") || !strings.Contains(body, "Disallow: /admin/") {
		t.Fatalf("robots.txt body:\n%s", body)
	}
}

func TestIndex(t *testing.T) {
	_, _, body := get(t, Handler(), "/")
	for _, s := range []string{`href="/catalogue/page-1.html"`, `href="/admin/stats.html"`} {
		if !strings.Contains(body, s) {
			t.Errorf("index lacks %s", s)
		}
	}
}

var (
	productRe = regexp.MustCompile(`<article class="product"><h3><a href="/book/(\d+)\.html" title="([^"]+)">[^<]+</a></h3><p class="price">£\d+\.\d\d</p></article>`)
	prevRe    = regexp.MustCompile(`<li class="previous"><a href="([^"]+)">previous</a></li>`)
	nextRe    = regexp.MustCompile(`<li class="next"><a href="([^"]+)">next</a></li>`)
)

func TestCatalogue(t *testing.T) {
	h := Handler()
	seen := map[string]bool{}
	for n := 1; n <= CataloguePages; n++ {
		path := "/catalogue/page-" + strconv.Itoa(n) + ".html"
		_, _, body := get(t, h, path)
		if c := strings.Count(body, `<article class="product">`); c != PerPage {
			t.Errorf("%s: %d products, want %d", path, c, PerPage)
		}
		ms := productRe.FindAllStringSubmatch(body, -1)
		if len(ms) != PerPage {
			t.Errorf("%s: %d well-formed products, want %d", path, len(ms), PerPage)
		}
		for _, m := range ms {
			if seen[m[1]] {
				t.Errorf("%s: book %s listed twice", path, m[1])
			}
			seen[m[1]] = true
		}
		if !strings.Contains(body, `<ul class="pager">`) {
			t.Errorf("%s: no pager", path)
		}
		prev, next := prevRe.FindStringSubmatch(body), nextRe.FindStringSubmatch(body)
		if n == 1 && prev != nil {
			t.Errorf("%s: first page has a previous link", path)
		}
		if n > 1 && (prev == nil || prev[1] != "page-"+strconv.Itoa(n-1)+".html") {
			t.Errorf("%s: previous link %v", path, prev)
		}
		if n == CataloguePages && next != nil {
			t.Errorf("%s: last page has a next link", path)
		}
		if n < CataloguePages && (next == nil || next[1] != "page-"+strconv.Itoa(n+1)+".html") {
			t.Errorf("%s: next link %v", path, next)
		}
	}
	if len(seen) != Books {
		t.Errorf("catalogue lists %d books, want %d", len(seen), Books)
	}
}

func TestBookPage(t *testing.T) {
	_, _, body := get(t, Handler(), "/book/42.html")
	want := `<div class="book"><h1>` + Title(42) + `</h1><p class="price">` + Price(42) +
		`</p><p class="stock">` + Stock(42) + `</p><a href="/catalogue/page-3.html">back</a></div>`
	if !strings.Contains(body, want) {
		t.Fatalf("book page lacks\n%s\ngot\n%s", want, body)
	}
}

func TestDeterministic(t *testing.T) {
	h := Handler()
	for _, p := range []string{"/", "/catalogue/page-7.html", "/book/123.html"} {
		_, _, a := get(t, h, p)
		_, _, b := get(t, h, p)
		if a != b {
			t.Errorf("%s differs between requests", p)
		}
	}
	if Title(1) == Title(2) || Price(1) == Price(2) {
		t.Error("books 1 and 2 look the same")
	}
}

func TestSpecParses(t *testing.T) {
	base := "http://127.0.0.1:8088"
	s, err := spec.Parse([]byte(Spec(base)))
	if err != nil {
		t.Fatal(err)
	}
	if s.Name != "books" || len(s.StartURLs) != 1 || s.StartURLs[0] != base+"/" {
		t.Errorf("name/start_urls: %q %v", s.Name, s.StartURLs)
	}
	if len(s.AllowedDomains) != 1 || s.AllowedDomains[0] != "127.0.0.1:8088" {
		t.Errorf("allowed_domains: %v", s.AllowedDomains)
	}
	if len(s.Follow) != 3 || len(s.Items) != 2 {
		t.Errorf("follow %v, items %d", s.Follow, len(s.Items))
	}
	if f := s.Items[0].Fields["title"]; f.CSS != "h3 a" || f.Attr != "title" {
		t.Errorf("items[0].title: %+v", f)
	}
	if f := s.Items[1].Fields["stock"]; f.CSS != ".stock" || f.Attr != "" {
		t.Errorf("items[1].stock: %+v", f)
	}
	p := s.Politeness
	if p.DelayOr(time.Hour) != 0 || p.Parallelism != 8 || !p.ObeyRobots() {
		t.Errorf("politeness: %+v", p)
	}
	// A trailing slash on base must not double up.
	if s, err := spec.Parse([]byte(Spec(base + "/"))); err != nil || s.StartURLs[0] != base+"/" {
		t.Errorf("base with slash: %v %v", err, s)
	}
}

// TestExpected walks the site the way the demo spec does and checks that
// Expected agrees. Every link on the site matches one of the spec's follow
// selectors, so following every href is the same walk; only robots.txt
// stops the crawler at /admin/.
func TestExpected(t *testing.T) {
	srv := httptest.NewServer(Handler())
	defer srv.Close()
	start, _ := url.Parse(srv.URL + "/")
	hrefRe := regexp.MustCompile(`href="([^"]+)"`)
	seen := map[string]bool{start.String(): true}
	queue := []*url.URL{start}
	pages, items, blocked := 0, 0, 0
	for len(queue) > 0 {
		u := queue[0]
		queue = queue[1:]
		if strings.HasPrefix(u.Path, "/admin/") {
			blocked++
			continue
		}
		resp, err := http.Get(u.String())
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("GET %s: %d", u, resp.StatusCode)
		}
		body := string(b)
		pages++
		items += strings.Count(body, `<article class="product">`) + strings.Count(body, `<div class="book">`)
		for _, m := range hrefRe.FindAllStringSubmatch(body, -1) {
			ref, err := url.Parse(m[1])
			if err != nil {
				t.Fatal(err)
			}
			v := u.ResolveReference(ref)
			if !seen[v.String()] {
				seen[v.String()] = true
				queue = append(queue, v)
			}
		}
	}
	wp, wi := Expected()
	if pages != wp || items != wi {
		t.Errorf("walk: %d pages, %d items; Expected says %d, %d", pages, items, wp, wi)
	}
	if blocked != 1 {
		t.Errorf("walk met /admin/ %d times, want 1 (so robots.txt matters)", blocked)
	}
}
