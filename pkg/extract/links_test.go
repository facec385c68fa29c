package extract_test

import (
	"fmt"
	"net/url"
	"path"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/crawlmesh/crawlmesh/pkg/extract"
	"github.com/crawlmesh/crawlmesh/pkg/spec"
	"github.com/crawlmesh/crawlmesh/pkg/synthsite"
	"github.com/crawlmesh/crawlmesh/pkg/urlnorm"
)

func TestLink(t *testing.T) {
	r := rules(t, `links: {allow: ["/catalog/", "/p/"], deny: ["/cart", "[?&]add="], strip_query: ["utm_*", sid]}`+"\n")
	base := mustURL(t, "https://example.com/catalog/list?page=1")
	for _, c := range []struct {
		base *url.URL
		href string
		want string // "" = refused
	}{
		// Seeds and sitemap entries: absolute, no base.
		{nil, "HTTP://Example.COM:80/catalog/../p/1?utm_source=x&b=2&sid=abc#frag", "http://example.com/p/1?b=2"},
		{nil, "https://example.com/catalog/", "https://example.com/catalog/"},
		{nil, "/p/1", ""}, // relative without a base
		{nil, "https://www.example.com/p/1", "https://www.example.com/p/1"}, // subdomain allowed
		{nil, "https://other.example/p/1", ""},                              // allowed_domains
		{nil, "https://example.com/about", ""},                              // matches no allow
		{nil, "https://example.com/p/1/cart", ""},                           // deny
		{nil, "https://example.com/p/1?qty=1&add=7", ""},
		{nil, "ftp://example.com/p/1", ""},
		// Links and redirect targets: relative to the page.
		{base, "?page=2&utm_medium=m", "https://example.com/catalog/list?page=2"},
		{base, "../p/9?sid=1", "https://example.com/p/9"},
		{base, "//example.com/p/2?SID=1", "https://example.com/p/2?SID=1"}, // names are case-sensitive
		{base, "/p/3?utm_source=a&utm_source=b", "https://example.com/p/3"},
		{base, "/p/3?a=1&&sid=2&", "https://example.com/p/3?a=1"},
		{base, "/p/3?utm%5Fsource=x&c=%20d", "https://example.com/p/3?c=%20d"}, // names are unescaped for matching
		{base, "javascript:void(0)", ""},
		{base, "mailto:x@example.com", ""},
	} {
		got, ok := r.Link(c.base, c.href)
		if got != c.want || ok != (c.want != "") {
			t.Errorf("Link(%v, %q) = %q, %v; want %q", c.base, c.href, got, ok, c.want)
		}
	}
}

// Patterns are written as users read URLs: a non-ASCII or spaced
// pattern matches the percent-encoded canonical URL too, and an encoded
// pattern still matches.
func TestLinkDecodedPatterns(t *testing.T) {
	r := rules(t, `links: {allow: ["/bücher/", "/p/"], deny: ["/ツ", "/sp ace", "/p/%E2%9C%93"]}`+"\n")
	for _, c := range []struct {
		href string
		ok   bool
	}{
		{"https://example.com/bücher/1", true},
		{"https://example.com/b%C3%BCcher/2", true},
		{"https://example.com/p/ツ", false},
		{"https://example.com/p/%E3%83%84", false},
		{"https://example.com/p/sp ace", false},
		{"https://example.com/p/sp%20ace", false},
		{"https://example.com/p/✓", false},    // an encoded pattern matches the canonical form
		{"https://example.com/p/%2541", true}, // decodes to %41, matches no deny
		{"https://example.com/other/ツ", false},
	} {
		if _, ok := r.Link(nil, c.href); ok != c.ok {
			t.Errorf("Link(%q) allowed = %v, want %v", c.href, ok, c.ok)
		}
	}
}

func TestLinkWithoutRules(t *testing.T) {
	r := rules(t, "")
	if got, ok := r.Link(nil, "https://example.com/a?utm_source=x#f"); !ok || got != "https://example.com/a?utm_source=x" {
		t.Errorf("Link = %q, %v: without strip_query only canonicalisation", got, ok)
	}
	if _, ok := r.Link(nil, "https://elsewhere.example/"); ok {
		t.Error("allowed_domains not applied")
	}
}

// Old specs (no spec fields for real sites) must yield what pkg/fetch's
// extract yielded, but for the two meanings DESIGN.md settles: href and
// src attributes come back absolute, and rel="nofollow" is honoured.
func TestOldSpecsUnchanged(t *testing.T) {
	synth := synthPage(t, 3)
	cases := []struct{ spec, url, body string }{
		{`follow: ["a.l"]
items: [{selector: "div.item", fields: {name: {css: ".name"}, price: {css: ".price"}}}]`, "http://example.com/p/3.html", synth},
		{`follow: ["#pager a", "base"]
items:
  - selector: article.product
    fields: {title: {css: h1}, sku: {css: .sku}, alt: {css: img, attr: alt}, none: {css: .nothing}, whole: {css: ""}, cls: {attr: class}}
  - selector: li
    fields: {t: {}}`, shopURL, stripNofollow(shopPage)},
		{`follow: ["a", "link[rel=next]"]`, "https://example.com/a/b", `<link rel="next" href="/next"><a href="x">x</a><a href="HTTP://EXAMPLE.com/dir/./x#f">again</a><a href=" /sp ace ">s</a>`},
	}
	for i, c := range cases {
		r := rules(t, c.spec+"\n")
		s := specOf(t, c.spec)
		final := mustURL(t, c.url)
		oldItems, oldLinks, err := oldExtract([]byte(c.body), final, s)
		if err != nil {
			t.Fatal(err)
		}
		res := page(t, r, c.url, "text/html", c.body)
		if !reflect.DeepEqual(res.Links, oldLinks) {
			t.Errorf("case %d links:\n got %q\nwant %q", i, res.Links, oldLinks)
		}
		if !reflect.DeepEqual(asAny(oldItems), res.Items) {
			t.Errorf("case %d items:\n got %#v\nwant %#v", i, res.Items, asAny(oldItems))
		}
	}
}

func synthPage(t testing.TB, i int) string {
	t.Helper()
	h := synthsite.New(synthsite.Config{Pages: 1000})
	rec := newRecorder()
	h.ServeHTTP(rec, httpGet(fmt.Sprintf("/p/%d.html", i)))
	if rec.Code != 200 {
		t.Fatalf("synthsite: %d", rec.Code)
	}
	return rec.Body.String()
}

// stripThenCanonical is strip_query as DESIGN.md words it: parameters
// dropped from the resolved URL, then canonicalised.
func stripThenCanonical(base *url.URL, href string, globs []string) (string, error) {
	u, err := url.Parse(strings.TrimSpace(href))
	if err != nil {
		return "", err
	}
	u = base.ResolveReference(u)
	var kept []string
	if u.RawQuery != "" {
		for _, p := range strings.Split(u.RawQuery, "&") {
			name, _, _ := strings.Cut(p, "=")
			n, err := url.QueryUnescape(name)
			if err != nil {
				// A name with a broken escape ("a%") is matched as its
				// canonical form decodes ("a%25": "a%"); not compared.
				return "", err
			}
			name = n
			drop := p == ""
			for _, g := range globs {
				if ok, _ := path.Match(g, name); ok {
					drop = true
				}
			}
			if !drop {
				kept = append(kept, p)
			}
		}
		u.RawQuery = strings.Join(kept, "&")
	}
	// Resolving "" canonicalises u itself: u.String() parsed again would
	// lose a query's trailing space (Canonical trims).
	return urlnorm.Resolve(u, "")
}

func FuzzStripQuery(f *testing.F) {
	f.Add("https://example.com/a/b", "?utm_source=x&b=2&sid=1")
	f.Add("https://example.com/", "/p?%75tm_x=1&ü=2&a%20b=3&%zz=4&=5&&sid")
	f.Add("http://example.com:80/a?sid=1", "")
	f.Add("http://example.com/a?sid=1&x=2", "#frag")
	f.Add("https://example.com/", "/p?a=1&sid=2 ")
	f.Add("https://example.com/", "//EXAMPLE.com:443/p?%E2%82%AC=1&utm_a&sid=%")
	globs := []string{"utm_*", "sid", "ü", "a b", "%zz"}
	r := rules(f, `links: {strip_query: ["utm_*", "sid", "ü", "a b", "%zz"]}`+"\n")
	f.Fuzz(func(t *testing.T, baseRaw, href string) {
		base, err := url.Parse(baseRaw)
		if err != nil || base.Scheme != "https" || base.Host != "example.com" {
			return
		}
		want, err := stripThenCanonical(base, href, globs)
		got, ok := r.Link(base, href)
		if err != nil || !strings.HasPrefix(want, "https://example.com/") {
			return // refused either way, or outside allowed_domains
		}
		if !ok || got != want {
			t.Fatalf("Link(%q, %q) = %q, %v; stripping first gives %q", baseRaw, href, got, ok, want)
		}
	})
}

// allow and deny take shortcuts (literals, required substrings): they
// must agree with plain regexp matching.
func FuzzAllowDeny(f *testing.F) {
	for _, c := range [][2]string{
		{"/cart", "https://example.com/cart?x=1"},
		{"[?&]add=", "https://example.com/p?x=1&add=2"},
		{`\.pdf$`, "https://example.com/a.pdf"},
		{`(?i)/CART`, "https://example.com/cart"},
		{`^https?://[^/]*example\.com/(p|c)/`, "https://www.example.com/c/1"},
		{`(add)=\d+|/x`, "https://example.com/x"},
		{"\xff", "https://example.com/\xff"},
		{"a\ufffdb", "https://example.com/a\xffb"},
	} {
		f.Add(c[0], c[1])
	}
	f.Fuzz(func(t *testing.T, expr, s string) {
		re, err := regexp.Compile(expr)
		if err != nil {
			return
		}
		// A sitemap start: a start URL matching deny is a spec mistake.
		r, err := extract.Compile(&spec.Spec{Name: "f", Sitemaps: []string{"https://example.com/sitemap.xml"},
			Links: &spec.Links{Deny: []string{expr}}})
		if err != nil {
			t.Fatalf("Compile(%q): %v", expr, err)
		}
		if got, want := extract.DenyMatches(r, s), re.MatchString(s); got != want {
			t.Fatalf("deny %q on %q: %v, regexp says %v", expr, s, got, want)
		}
	})
}
