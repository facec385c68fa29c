package robots

import (
	"net/url"
	"testing"
)

// FuzzParse feeds arbitrary bodies, agents and paths through Parse and every
// query. Allowed must not panic, must answer the same twice, and must agree
// with googleAllowed, a direct port of Google's streaming matcher.
func FuzzParse(f *testing.F) {
	f.Add([]byte("User-agent: *\nDisallow: /private\n"), "crawlmesh", "/private/x?y=1")
	f.Add([]byte("User-agent: crawlmesh\nDisallow: /\nCrawl-delay: 2.5\n\nUser-agent: *\nAllow: /\n"), "crawlmesh", "/")
	f.Add([]byte("User-agent: *\nDisallow: /*.pdf$\nAllow: /a*b\n"), "other", "/x/y.pdf")
	f.Add([]byte("Disallow: /before-agent\nUser-agent: *\nCrawl-delay: soon\nDisallow: /x\n"), "crawlmesh", "/before-agent")
	f.Add([]byte("\xef\xbb\xbfUSER-AGENT: *\r\nDISALLOW: /%7ea\r\n"), "crawlmesh", "/~a")
	f.Add([]byte("Sitemap: http://h/s.xml\nHost: h\n# comment\nsite-map: http://h/s.xml\n"), "", "")
	f.Add([]byte("User-Agent: *\nAllow: /allowed-slash/index.html\nDisallow: /\n"), "foobot", "/allowed-slash/")
	f.Add([]byte("user-agent FooBot\ndisallow /\nuser-agent: BarBot\nSitemap: x\nuser-agent: *\ndisallow: /*a*b*c$\n"), "barbot", "/aXbYc")
	f.Add([]byte("User-agent: FooBot\nCrawl-delay: 99999999999999999999999999999\nAllow: /foo/bar/ツ\nDisallow: /\n"), "FooBot", "/foo/bar/%E3%83%84")
	f.Fuzz(func(t *testing.T, body []byte, agent, path string) {
		r := Parse(body)
		tok := leadingToken(agent)
		if tok == "" {
			tok = "foobot"
		}
		got := r.Allowed(tok, path)
		if again := r.Allowed(tok, path); again != got {
			t.Fatalf("Allowed(%q, %q) = %v, then %v", tok, path, got, again)
		}
		if len(body) <= MaxSize {
			p := path
			if p == "" || p[0] != '/' {
				p = "/" + p
			}
			if want := googleAllowed(string(body), tok, p); got != want {
				t.Fatalf("Allowed(%q, %q) = %v, Google's matcher says %v\nrobots.txt: %q", tok, p, got, want, body)
			}
		}
		r.Allowed(agent, path) // any string, any case: no panic
		if d := r.CrawlDelay(tok); d < 0 || d > MaxCrawlDelay {
			t.Fatalf("CrawlDelay(%q) = %v, outside [0, %v]", tok, d, MaxCrawlDelay)
		}
		seen := map[string]bool{}
		for _, s := range r.Sitemaps() {
			if s == "" || seen[s] {
				t.Fatalf("Sitemaps() = %q: empty or repeated value", r.Sitemaps())
			}
			seen[s] = true
		}
		if u, err := url.Parse(path); err == nil {
			r.AllowedURL(tok, u)
		}
	})
}

// FuzzMatch checks the greedy glob matcher against Google's pos[] matcher
// on arbitrary patterns and paths, wildcards and anchors included.
func FuzzMatch(f *testing.F) {
	f.Add("/*.php$", "/folder/filename.php")
	f.Add("/fish*.php", "/fishheads/catfish.php?parameters")
	f.Add("/a*b*c", "/aabbcc")
	f.Add("$", "/")
	f.Add("/a$$", "/a$")
	f.Add("**", "")
	f.Add("/*aa$", "/aaa")
	f.Add("/a*a$", "/a")
	f.Add("/*ab*ab$", "/abab")
	f.Fuzz(func(t *testing.T, pattern, path string) {
		ru := newRule(false, pattern)
		got := ru.match(path)
		if want := googleMatches(path, pattern); got != want {
			t.Fatalf("match(%q, %q) = %v, Google's Matches says %v", pattern, path, got, want)
		}
	})
}
