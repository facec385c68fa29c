package fetch

import (
	"bytes"
	"net/url"
	"strings"
	"testing"

	"github.com/PuerkitoBio/goquery"

	"github.com/crawlmesh/crawlmesh/pkg/extract"
	"github.com/crawlmesh/crawlmesh/pkg/robots"
	"github.com/crawlmesh/crawlmesh/pkg/spec"
	"github.com/crawlmesh/crawlmesh/pkg/urlnorm"
)

// FuzzRobots feeds arbitrary robots.txt answers and paths through what the
// robots cache does with every answer (cap the body, store, turn into rules)
// and every check. The Crawl-delay overflow an older parser had is kept in
// testdata/fuzz/FuzzRobots.
func FuzzRobots(f *testing.F) {
	const ua = "crawlmesh/1 (+https://github.com/crawlmesh/crawlmesh)"
	f.Add(200, []byte("User-agent: *\nDisallow: /private\n"), "/private/x?y=1", ua)
	f.Add(200, []byte("User-agent: crawlmesh\nDisallow: /\nCrawl-delay: 2.5\n\nUser-agent: *\nAllow: /\n"), "/", ua)
	f.Add(200, []byte("User-agent: *\nDisallow: /*.pdf$\nAllow: /a*b\n"), "/x/y.pdf", "Other")
	f.Add(200, []byte("Disallow: /before-agent\nUser-agent: *\n"), "/before-agent", ua)
	f.Add(200, []byte("\xef\xbb\xbfUSER-AGENT: *\r\nDISALLOW: /%7Ea\r\n"), "/~a", ua)
	f.Add(200, []byte("Sitemap: http://h/s.xml\nHost: h\n# comment\n"), "", "")
	f.Add(404, []byte("User-agent: *\nDisallow: /\n"), "/", ua)
	f.Add(503, []byte(""), "/", ua)
	f.Add(302, []byte("moved"), "/", ua)
	f.Add(0, []byte(""), "/", ua)
	f.Fuzz(func(t *testing.T, status int, body []byte, path, agent string) {
		capped := capRobots(body)
		if len(capped) > robots.MaxSize {
			t.Fatalf("capped body of %d bytes, over robots.MaxSize", len(capped))
		}
		r := rulesOf(RobotsFile{Status: status, Body: capped})
		token := robots.ProductToken(agent)
		u, err := url.Parse("http://example.com" + path)
		if err != nil || u.Host != "example.com" {
			u = &url.URL{Scheme: "http", Host: "example.com", Path: path}
		}
		allowed := r.AllowedURL(token, u)
		switch {
		case status >= 400 && status < 500 && status != 429:
			if !allowed || r.Kind() != robots.KindUnavailable {
				t.Fatalf("status %d: %v, allowed %v; want allow-all", status, r.Kind(), allowed)
			}
		case status == 0 || status == 429 || status >= 500:
			if allowed || r.Kind() != robots.KindUnreachable {
				t.Fatalf("status %d: %v, allowed %v; want disallow-all", status, r.Kind(), allowed)
			}
		case status >= 200 && status <= 299:
			// Capping is what Parse does with a long body anyway.
			if whole := robots.Parse(body).AllowedURL(token, u); whole != allowed {
				t.Fatalf("capped body says %v, whole body %v", allowed, whole)
			}
			// Every spelling robots takes for Disallow starts "dis" but
			// Google's typo "diasllow".
			lower := bytes.ToLower(body)
			if !bytes.Contains(lower, []byte("dis")) && !bytes.Contains(lower, []byte("diasllow")) && !allowed {
				t.Fatalf("body %q: %q blocked for %q without a Disallow", body, u.EscapedPath(), token)
			}
		}
		if d := r.CrawlDelay(token); d < 0 || d > robots.MaxCrawlDelay {
			t.Fatalf("body %q: Crawl-delay %v for %q", body, d, token)
		}
	})
}

// FuzzExtract feeds arbitrary HTML and selectors through what a fetch does
// with a page's body. Selectors the spec validator refuses never reach a
// worker, so they are replaced by defaults here.
func FuzzExtract(f *testing.F) {
	f.Add([]byte(`<html><body><div class="b"><h3><a href="/x/../y?q=1#f" title=" T ">T</a></h3><p class="price">£1</p></div>`+
		`<a href="HTTP://Other.Example:80/a">o</a><a href="mailto:x@y">m</a></body></html>`),
		"div.b", "h3 a", "title", "a[href]", "http://example.com/cat/page-1.html", "example.com")
	f.Add([]byte(`<base href="https://cdn.example.com/base/"><a href="rel">r</a><a href="//proto.example/p">p</a>`),
		"a", "", "href", "a", "http://example.com/", "")
	f.Add([]byte(`<base href="javascript:alert(1)"><a href="x">x</a><a href="http://[::1]:8080/%2e%2e/a">v6</a>`),
		"*", "b", "", "[href]", "http://127.0.0.1:8088/a/b", "127.0.0.1:8088")
	f.Add([]byte("<table><tr><td><a href=' \t/sp ace\n'>\u00a0 text \u2003</a><form><a href=%zz>bad</a>"),
		"td", ":not(a)", "", "a:nth-child(2n+1)", "https://h.example/", "h.example")
	f.Add([]byte("<svg><a xlink:href='/svg'>s</a></svg><math><mi><a href='/m'>m</a></math><noscript><a href='/n'>n</a></noscript>"),
		"a", "", "xlink:href", "svg a, a", "http://example.com/", "")
	f.Add([]byte(strings.Repeat("<div>", 600)+"<a href='/deep'>deep</a>"), "div > a", "", "href", "a", "http://example.com/", "")
	f.Add([]byte("\x00\xff<a href='http://exa\x00mple.com/'>nul</a>"), ">>>", "[", "", "a[", "not a url", "bad domain/")
	f.Fuzz(func(t *testing.T, body []byte, itemSel, fieldCSS, attr, followSel, base, allowed string) {
		final, err := url.Parse(base)
		if _, cerr := urlnorm.Canonical(base); err != nil || cerr != nil || (final.Scheme != "http" && final.Scheme != "https") || final.Host == "" {
			// A page's URL is one the crawl could name (start URLs that
			// cannot be, such as http://!, are refused at apply).
			final, _ = url.Parse("http://example.com/a/b.html")
		}
		s := fuzzSpec(final, itemSel, fieldCSS, attr, followSel, allowed)
		rules, err := extract.Compile(s)
		if err != nil {
			t.Fatalf("a valid spec does not compile: %v", err)
		}
		body = toUTF8(body, "text/html")
		res, err := rules.Page(final, "text/html", body)
		if err != nil {
			return
		}
		items, links := res.Items, res.Links
		doc, err := goquery.NewDocumentFromReader(bytes.NewReader(body))
		if err != nil && strings.Contains(err.Error(), "open stack of elements") {
			return // extract caps such nesting and reads on; the oracle's parser gives up
		}
		if err != nil {
			t.Fatalf("extract parsed what goquery refuses: %v", err)
		}
		want := 0
		for _, r := range s.Items {
			want += doc.Find(r.Selector).Length()
		}
		if len(items) != want {
			t.Fatalf("%d items, want one per element matching the item selectors (%d)", len(items), want)
		}
		nf := len(s.Items[0].Fields)
		for _, it := range items {
			if len(it) != nf {
				t.Fatalf("item %v: %d fields, want %d", it, len(it), nf)
			}
			for k, v := range it {
				if v, _ := v.(string); strings.TrimSpace(v) != v {
					t.Fatalf("field %s = %q is not trimmed", k, v)
				}
			}
		}
		seen := map[string]bool{}
		for _, l := range links {
			if seen[l] {
				t.Fatalf("link %q twice in %q", l, links)
			}
			seen[l] = true
			c, err := urlnorm.Canonical(l)
			if err != nil || c != l {
				t.Fatalf("link %q is not canonical: Canonical = %q, %v", l, c, err)
			}
			u, err := url.Parse(l)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || u.Fragment != "" {
				t.Fatalf("link %q is not an absolute http(s) URL without user or fragment (%v)", l, err)
			}
			if !spec.DomainAllowed(s.AllowedDomains, u) {
				t.Fatalf("link %q is outside allowed_domains %q", l, s.AllowedDomains)
			}
		}
	})
}

// fuzzSpec builds a spider spec for a page fetched from final from the
// fuzzed parts the validator accepts, and defaults for the rest.
func fuzzSpec(final *url.URL, itemSel, fieldCSS, attr, followSel, allowed string) *spec.Spec {
	s := &spec.Spec{Name: "f", StartURLs: []string{final.String()}}
	try := func(mod func(*spec.Spec)) {
		c := *s
		mod(&c)
		if c.Validate() == nil {
			*s = c
		}
	}
	// A fetch's final URL passed the allowed_domains check (redirect
	// handler), as a start URL does in validation.
	if allowed != "" {
		try(func(c *spec.Spec) { c.AllowedDomains = []string{allowed} })
	}
	s.Follow = []string{"[href]"}
	try(func(c *spec.Spec) { c.Follow = []string{followSel} })
	s.Items = []spec.ItemRule{{Selector: "a", Fields: map[string]spec.Field{"text": {}, "href": {Attr: "href"}}}}
	try(func(c *spec.Spec) {
		c.Items = []spec.ItemRule{{Selector: itemSel, Fields: map[string]spec.Field{"text": {}, "f": {CSS: fieldCSS, Attr: attr}}}}
	})
	if err := s.Validate(); err != nil {
		panic("fuzzSpec built an invalid spec: " + err.Error())
	}
	return s
}
