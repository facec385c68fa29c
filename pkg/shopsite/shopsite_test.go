package shopsite

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/crawlmesh/crawlmesh/pkg/spec"
)

func startSite(t *testing.T, opts Options) (*Site, string) {
	t.Helper()
	s := New(opts)
	base, err := s.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s, base
}

func envMap(s *Site) map[string]string {
	m := map[string]string{}
	for _, kv := range s.Env() {
		k, v, _ := strings.Cut(kv, "=")
		m[k] = v
	}
	return m
}

func crawl(t *testing.T, s *Site, base string, mutate func(*refCrawler)) []ExpectedItem {
	t.Helper()
	s.Reset()
	c := &refCrawler{t: t, spec: parseSpec(t, s.SpecYAML(base)), env: envMap(s)}
	if mutate != nil {
		mutate(c)
	}
	return c.run()
}

// okPages is what the site answered 200 to GETs of pages, in order.
func okPages(s *Site, base string) []string {
	var out []string
	for _, r := range s.Requests() {
		if r.Method == http.MethodGet && r.Status == 200 && !strings.HasPrefix(r.URI, "/sitemap") &&
			r.URI != "/robots.txt" && r.URI != "/account" {
			out = append(out, base+r.URI)
		}
	}
	return out
}

// TestCrawlMatchesExpected crawls with a reference reading of the spec:
// the exported items must be exactly Expected, with no violation, each
// page fetched once, and both relogin triggers used.
func TestCrawlMatchesExpected(t *testing.T) {
	s, base := startSite(t, Options{})
	got := crawl(t, s, base, nil)
	want := s.Expected(base)
	if len(want) != 32 {
		t.Errorf("Expected has %d items, the package doc says 32", len(want))
	}
	if d := Diff(want, got); d != nil {
		t.Errorf("items differ from Expected:\n%s", strings.Join(d, "\n"))
	}
	if v := s.Violations(); len(v) != 0 {
		t.Errorf("violations:\n%s", strings.Join(v, "\n"))
	}
	pages := okPages(s, base)
	slices.Sort(pages)
	if wp := s.ExpectedPages(base); !slices.Equal(pages, wp) || len(wp) != 36 {
		t.Errorf("pages fetched (%d):\n%s\nwant (%d):\n%s", len(pages), strings.Join(pages, "\n"), len(wp), strings.Join(wp, "\n"))
	}
	var expired401, expired302 int
	for _, r := range s.Requests() {
		switch {
		case r.Status == 401:
			expired401++
		case r.Status == 302 && strings.HasPrefix(r.URI, "/members/"):
			expired302++
		}
	}
	if s.Logins() < 2 || expired401 == 0 || expired302 == 0 {
		t.Errorf("logins %d, 401s %d, member redirects %d: relogin not exercised", s.Logins(), expired401, expired302)
	}
	// Items of a crawl read back from JSON compare equal too.
	b, _ := json.Marshal(got)
	var back []ExpectedItem
	if err := json.Unmarshal(b, &back); err != nil || Diff(want, back) != nil {
		t.Errorf("round trip through JSON: %v %v", err, Diff(want, back))
	}
}

// TestEveryFeatureNeeded switches one behaviour of the reference crawler
// off at a time: each must show, as the named violation, or as wrong
// items (missing or extra), or both.
func TestEveryFeatureNeeded(t *testing.T) {
	s, base := startSite(t, Options{})
	setField := func(name string, f func(*refField)) func(*refCrawler) {
		return func(c *refCrawler) {
			v := c.spec.Items[0].Fields[name]
			f(&v)
			c.spec.Items[0].Fields[name] = v
		}
	}
	cases := []struct {
		name      string
		mutate    func(*refCrawler)
		violation string // a violation containing this must be seen ("" none)
		diff      bool   // the items must differ
	}{
		{"browser user agent", func(c *refCrawler) { c.spec.Request.UserAgent = "Mozilla/5.0 (compatible; shopbot/2.1)" }, "User-Agent", true},
		{"no api key", func(c *refCrawler) { delete(c.spec.Request.Headers, "X-Api-Key") }, "without X-Api-Key", true},
		{"secrets not expanded", func(c *refCrawler) { c.env = nil }, "wrong credentials", true},
		{"no currency cookie", func(c *refCrawler) { c.spec.Request.Cookies = nil }, "currency=EUR", true},
		{"no relogin on 401", func(c *refCrawler) { c.spec.Login.ReloginOn = nil }, "", true},
		{"no relogin on redirect to login", func(c *refCrawler) { c.noLoginRedirect = true }, "", true},
		{"robots * group", func(c *refCrawler) { c.robotsAgent = "*" }, "", true},
		{"robots shop group (prefix match)", func(c *refCrawler) { c.robotsAgent = "shop" }, "", true},
		{"robots ignored", func(c *refCrawler) { c.spec.Politeness.RobotsTxt = false }, "disallowed by robots.txt", true},
		{"no sitemaps", func(c *refCrawler) { c.spec.Sitemaps = nil }, "", true},
		{"follow every link", func(c *refCrawler) { c.spec.Links.Follow = []string{"a"} }, "footer", true},
		{"no links.json", func(c *refCrawler) { c.spec.Links.JSON = nil }, "", true},
		{"no allow", func(c *refCrawler) { c.spec.Links.Allow = nil }, "outside links.allow", false},
		{"no deny", func(c *refCrawler) { c.spec.Links.Deny = nil }, "links.deny", true},
		{"deny only /cart", func(c *refCrawler) { c.spec.Links.Deny = []string{"/cart"} }, "add-to-cart", true},
		{"no strip_query", func(c *refCrawler) { c.spec.Links.StripQuery = nil }, "strip_query", true},
		{"nofollow ignored", func(c *refCrawler) { c.spec.Links.Nofollow = new(bool) }, "nofollow", true},
		{"no url filter", func(c *refCrawler) { c.spec.Items[0].URL = "" }, "", true},
		{"no required", func(c *refCrawler) { c.spec.Items[0].Required, c.spec.Items[1].Required = nil, nil }, "", true},
		{"regex without group", setField("price", func(f *refField) { f.Regex = "Price: [0-9.]+" }), "", true},
		{"tags not all", setField("tags", func(f *refField) { f.All = false }), "", true},
		{"image not absolute", setField("image", func(f *refField) { f.Attr = "alt" }), "", true},
	}
	for _, tc := range cases {
		got := crawl(t, s, base, tc.mutate)
		d, v := Diff(s.Expected(base), got), s.Violations()
		if tc.diff && len(d) == 0 {
			t.Errorf("%s: the items came out right: the site does not need it", tc.name)
		}
		if tc.violation != "" && !slices.ContainsFunc(v, func(x string) bool { return strings.Contains(x, tc.violation) }) {
			t.Errorf("%s: no violation mentioning %q in %q", tc.name, tc.violation, v)
		}
		if tc.violation == "" && len(v) != 0 {
			t.Errorf("%s: unexpected violations %q", tc.name, v)
		}
	}
}

// TestSpecParses: the repo's spec parser accepts SpecYAML as it is.
func TestSpecParses(t *testing.T) {
	s := New(Options{})
	if _, err := spec.Parse([]byte(s.SpecYAML("http://127.0.0.1:8088/"))); err != nil {
		t.Fatal(err)
	}
}
