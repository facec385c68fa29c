package robots

import (
	"bytes"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"
)

// The two failures that made the crawler ignore whole files with
// github.com/temoto/robotstxt: one bad line must void nothing else.
func TestRegressionBadLineKeepsFile(t *testing.T) {
	for _, c := range []struct {
		name, body string
		path       string
		want       bool
	}{
		{"crawl_delay_soon", "User-agent: *\nCrawl-delay: soon\nDisallow: /private\n", "/private/x", false},
		{"crawl_delay_soon_other_path", "User-agent: *\nCrawl-delay: soon\nDisallow: /private\n", "/public", true},
		{"rule_before_user_agent", "Disallow: /x\nUser-agent: *\nDisallow: /private\n", "/private", false},
		{"rule_before_user_agent_is_ignored", "Disallow: /x\nUser-agent: *\nDisallow: /private\n", "/x", true},
		{"garbage_lines", "<html>\nUser-agent: *\n}{:::\nDisallow: /private\nHost example.com extra\n", "/private", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := Parse([]byte(c.body)).Allowed("crawlmesh", c.path); got != c.want {
				t.Errorf("Allowed(crawlmesh, %q) = %v, want %v", c.path, got, c.want)
			}
		})
	}
}

// Ports reporting_robots_test.cc LinesNumbersAreCountedCorrectly: the kind
// of each line, typos included. Google's "unused" tag (noarchive) is an
// unknown directive here.
func TestReportingLinesNumbersAreCountedCorrectly(t *testing.T) {
	const body = "User-Agent: foo\n" + // 1
		"Allow: /some/path\n" + // 2
		"User-Agent bar # no\n" + // 3
		"absolutely random line\n" + // 4
		"#so comment, much wow\n" + // 5
		"\n" + // 6
		"unicorns: /extinct\n" + // 7
		"noarchive: /some\n" + // 8
		"Disallow: /\n" + // 9
		"Error #and comment\n" + // 10
		"useragent: baz\n" + // 11
		"disallaw: /some\n" + // 12
		"site-map: https://e/s.xml #comment\n" + // 13
		"sitemap: https://e/t.xml\n" + // 14
		"Noarchive: /someCapital\n" // 15, and 16 from the last \n
	type kt struct {
		k    key
		typo bool
	}
	want := []kt{
		{keyUserAgent, false}, {keyAllow, false}, {keyUserAgent, false}, {keyNone, false},
		{keyNone, false}, {keyNone, false}, {keyUnknown, false}, {keyUnknown, false},
		{keyDisallow, false}, {keyNone, false}, {keyUserAgent, true}, {keyDisallow, true},
		{keySitemap, true}, {keySitemap, false}, {keyUnknown, false}, {keyNone, false},
	}
	var got []kt
	scan(body, func(l line) {
		if l.num != len(got)+1 {
			t.Fatalf("line %d reported as %d", len(got)+1, l.num)
		}
		got = append(got, kt{l.key, l.typo})
	})
	if !slices.Equal(got, want) {
		t.Errorf("lines parse to\n%v, want\n%v", got, want)
	}
	if s := report(body); s.valid != 8 {
		t.Errorf("valid directives %d, want 8", s.valid)
	}
	if s := Parse([]byte(body)).Sitemaps(); !slices.Equal(s, []string{"https://e/s.xml", "https://e/t.xml"}) {
		t.Errorf("Sitemaps() = %q", s)
	}
	for name, b := range map[string]string{
		"dos": "User-Agent: foo\r\nAllow: /some/path\r\nUser-Agent: bar\r\n\r\n\r\nDisallow: /\r\n",
		"mac": "User-Agent: foo\rAllow: /some/path\rUser-Agent: bar\r\r\rDisallow: /\r",
	} {
		n := 0
		scan(b, func(line) { n++ })
		if s := report(b); s.valid != 4 || n != 7 {
			t.Errorf("%s: valid %d, lines %d; want 4, 7", name, s.valid, n)
		}
	}
}

// Ports reporting_robots_test.cc LinesTooLongReportedCorrectly.
func TestReportingLinesTooLongReportedCorrectly(t *testing.T) {
	const kMaxLineLen = 2084 * 8
	longline := "/x/" + strings.Repeat("a", kMaxLineLen-3)
	body := "user-agent: foo\n" + "disallow: " + longline + "\n" + "allow: /\n"
	var lines []line
	scan(body, func(l line) { lines = append(lines, l) })
	if len(lines) != 4 || report(body).valid != 3 {
		t.Fatalf("%d lines, %d valid; want 4, 3", len(lines), report(body).valid)
	}
	if l := lines[1]; l.key != keyDisallow || !l.tooLong || lines[0].tooLong || lines[2].tooLong {
		t.Errorf("line 2: key %v tooLong %v; lines 1, 3 tooLong %v %v", l.key, l.tooLong, lines[0].tooLong, lines[2].tooLong)
	}
}

// Every misspelling Google accepts, and prefix matching of keys.
func TestTypos(t *testing.T) {
	for _, k := range []string{
		"disallow", "DISALLOW", "dissallow", "dissalow", "disalow", "diasllow", "disallaw", "Disallowed",
	} {
		body := "user agent: crawlmesh\n" + k + ": /x\n"
		if Parse([]byte(body)).Allowed("crawlmesh", "/x") {
			t.Errorf("%q: /x allowed, want disallowed", body)
		}
	}
	for _, ua := range []string{"User-agent", "useragent", "user agent", "USER-AGENTS"} {
		body := ua + ": crawlmesh\nDisallow: /\n"
		if Parse([]byte(body)).Allowed("crawlmesh", "/") {
			t.Errorf("%q: / allowed, want disallowed", body)
		}
	}
	if Parse([]byte("user-agent: crawlmesh\ndisalllow: /\n")).Allowed("crawlmesh", "/") != true {
		t.Error("disalllow (not a typo Google accepts) was read as disallow")
	}
}

func TestForStatus(t *testing.T) {
	body := []byte("User-agent: *\nDisallow: /private\nSitemap: https://e/s.xml\n")
	for _, c := range []struct {
		status  int
		kind    Kind
		private bool // Allowed(_, "/private")
		public  bool // Allowed(_, "/public")
	}{
		{200, KindParsed, false, true},
		{203, KindParsed, false, true},
		{301, KindUnavailable, true, true}, // redirects not resolved by the caller
		{400, KindUnavailable, true, true},
		{401, KindUnavailable, true, true},
		{403, KindUnavailable, true, true},
		{404, KindUnavailable, true, true},
		{410, KindUnavailable, true, true},
		{429, KindUnreachable, false, false},
		{500, KindUnreachable, false, false},
		{503, KindUnreachable, false, false},
		{599, KindUnreachable, false, false},
		{100, KindUnreachable, false, false},
		{0, KindUnreachable, false, false},
		{600, KindUnreachable, false, false},
	} {
		t.Run(itoa(c.status), func(t *testing.T) {
			r := ForStatus(c.status, body)
			if r.Kind() != c.kind {
				t.Errorf("Kind() = %v, want %v", r.Kind(), c.kind)
			}
			if got := r.Allowed("crawlmesh", "/private"); got != c.private {
				t.Errorf("Allowed(/private) = %v, want %v", got, c.private)
			}
			if got := r.AllowedURL("crawlmesh", &url.URL{Path: "/public"}); got != c.public {
				t.Errorf("AllowedURL(/public) = %v, want %v", got, c.public)
			}
			if c.kind != KindParsed && (len(r.Sitemaps()) != 0 || r.CrawlDelay("crawlmesh") != 0) {
				t.Errorf("%v: sitemaps %q, delay %v; want none", c.kind, r.Sitemaps(), r.CrawlDelay("crawlmesh"))
			}
		})
	}
	if r := ForStatus(204, nil); r.Kind() != KindParsed || !r.Allowed("crawlmesh", "/") {
		t.Error("204 with no body: want parsed, everything allowed")
	}
	if r := Unreachable(); r.Kind() != KindUnreachable || r.Allowed("crawlmesh", "/") || r.Kind().String() != "unreachable" {
		t.Error("Unreachable(): want everything disallowed")
	}
	if r := AllowAll(); r.Kind() != KindUnavailable || !r.Allowed("crawlmesh", "/") || r.Kind().String() != "unavailable" {
		t.Error("AllowAll(): want everything allowed")
	}
	var zero Robots
	if !zero.Allowed("crawlmesh", "/") || zero.Kind().String() != "parsed" {
		t.Error("zero Robots: want parsed, everything allowed")
	}
}

func TestProductToken(t *testing.T) {
	for _, c := range []struct{ ua, want string }{
		{"shopbot/2.1 (+https://example.com/bot)", "shopbot"},
		{"crawlmesh/1 (+https://github.com/crawlmesh/crawlmesh)", "crawlmesh"},
		{"CrawlMesh", "crawlmesh"},
		{"Googlebot-Image/1.0", "googlebot-image"},
		{"my_bot", "my_bot"},
		{"  shopbot/2", "shopbot"},
		// A bot that names itself in a browser's "compatible" comment, as
		// Googlebot does, is that bot; a browser's string stays mozilla.
		{"Mozilla/5.0 (compatible; Googlebot/2.1)", "googlebot"},
		{"Mozilla/5.0 (compatible;ShopBot/2.1; +https://example.com/bot)", "shopbot"},
		{"Mozilla/5.0 (compatible; 2bot)", "mozilla"},
		{"Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101 Firefox/120.0", "mozilla"},
		{"shop bot", "shop"},
		{"", ""},
		{"/2.1", ""},
		{"007bot", ""},
		{"ツbot", ""},
		{"*", ""},
	} {
		if got := ProductToken(c.ua); got != c.want {
			t.Errorf("ProductToken(%q) = %q, want %q", c.ua, got, c.want)
		}
	}
	// A file naming the agent by a longer value still selects it.
	r := Parse([]byte("User-agent: Shopbot/2.1\nDisallow: /\n"))
	if r.Allowed(ProductToken("shopbot/3.0 (+https://example.com)"), "/x") {
		t.Error("User-agent: Shopbot/2.1 did not select token shopbot")
	}
	// The token is never a prefix match of the file's value, nor the reverse.
	r = Parse([]byte("User-agent: shop\nDisallow: /\nUser-agent: shopbotx\nDisallow: /\n"))
	if !r.Allowed("shopbot", "/x") {
		t.Error("shopbot selected the group of shop or shopbotx")
	}
	// No Unicode case folding: the Kelvin sign is not a k.
	r = Parse([]byte("User-agent: kbot\nDisallow: /\n"))
	if !r.Allowed("\u212Abot", "/x") {
		t.Error(`"\u212Abot" selected the group of kbot`)
	}
}

func TestSitemaps(t *testing.T) {
	body := "Sitemap: https://e/a.xml\n" +
		"User-agent: *\n" +
		"SITEMAP:https://e/b.xml # comment\n" +
		"Sitemap: https://e/a.xml\n" +
		"Sitemap:\n" +
		"sitemaps: https://e/C.xml\n" +
		"User-agent: other\n" +
		"Disallow: /x\n" +
		"site-map: https://e/d.xml?x=1&y=ツ\n"
	want := []string{"https://e/a.xml", "https://e/b.xml", "https://e/C.xml", "https://e/d.xml?x=1&y=ツ"}
	r := Parse([]byte(body))
	got := r.Sitemaps()
	if !slices.Equal(got, want) {
		t.Errorf("Sitemaps() = %q, want %q", got, want)
	}
	got[0] = "changed"
	if r.Sitemaps()[0] != want[0] {
		t.Error("Sitemaps() returned its own slice")
	}
	// Sitemap lines between two User-agent lines do not split the group.
	if r.Allowed("crawlmesh", "/x") {
		t.Error("Sitemap line closed the group")
	}
	if Parse(nil).Sitemaps() != nil {
		t.Error("no Sitemap line: want nil")
	}
}

func TestCrawlDelay(t *testing.T) {
	for _, c := range []struct {
		name, body, token string
		want              time.Duration
	}{
		{"seconds", "User-agent: *\nCrawl-delay: 10\n", "crawlmesh", 10 * time.Second},
		{"fraction", "User-agent: *\nCrawl-delay: 0.5\n", "crawlmesh", 500 * time.Millisecond},
		{"leading_dot", "User-agent: *\nCrawl-delay: .25\n", "crawlmesh", 250 * time.Millisecond},
		{"trailing_dot", "User-agent: *\nCrawl-delay: 2.\n", "crawlmesh", 2 * time.Second},
		{"comment", "User-agent: *\nCrawl-delay: 3 # be nice\n", "crawlmesh", 3 * time.Second},
		{"typo", "User-agent: *\ncrawldelay: 3\n", "crawlmesh", 3 * time.Second},
		{"zero", "User-agent: *\nCrawl-delay: 0\n", "crawlmesh", 0},
		{"soon", "User-agent: *\nCrawl-delay: soon\n", "crawlmesh", 0},
		{"negative", "User-agent: *\nCrawl-delay: -5\n", "crawlmesh", 0},
		{"exponent", "User-agent: *\nCrawl-delay: 1e3\n", "crawlmesh", 0},
		{"unit", "User-agent: *\nCrawl-delay: 10s\n", "crawlmesh", 0},
		{"nan", "User-agent: *\nCrawl-delay: NaN\n", "crawlmesh", 0},
		{"two_dots", "User-agent: *\nCrawl-delay: 1.2.3\n", "crawlmesh", 0},
		{"dot", "User-agent: *\nCrawl-delay: .\n", "crawlmesh", 0},
		{"capped", "User-agent: *\nCrawl-delay: 3600\n", "crawlmesh", MaxCrawlDelay},
		{"overflow", "User-agent: *\nCrawl-delay: 9223372036854775807\n", "crawlmesh", MaxCrawlDelay},
		{"huge", "User-agent: *\nCrawl-delay: 1" + strings.Repeat("0", 400) + "\n", "crawlmesh", MaxCrawlDelay},
		{"tiny", "User-agent: *\nCrawl-delay: 0." + strings.Repeat("0", 400) + "1\n", "crawlmesh", 0},
		{"bad_then_good", "User-agent: *\nCrawl-delay: soon\nCrawl-delay: 2\n", "crawlmesh", 2 * time.Second},
		{"largest_wins", "User-agent: *\nCrawl-delay: 5\nCrawl-delay: 2\n", "crawlmesh", 5 * time.Second},
		{"before_user_agent", "Crawl-delay: 5\nUser-agent: *\nDisallow:\n", "crawlmesh", 0},
		{"specific_wins", "User-agent: *\nCrawl-delay: 10\n\nUser-agent: crawlmesh\nCrawl-delay: 5\n", "crawlmesh", 5 * time.Second},
		{"specific_without_delay", "User-agent: *\nCrawl-delay: 10\n\nUser-agent: crawlmesh\nDisallow: /x\n", "crawlmesh", 0},
		{"other_agent", "User-agent: *\nCrawl-delay: 10\n\nUser-agent: crawlmesh\nCrawl-delay: 5\n", "shopbot", 10 * time.Second},
		{"merged_groups", "User-agent: crawlmesh\nCrawl-delay: 1\nDisallow: /a\nUser-agent: crawlmesh\nCrawl-delay: 3\n", "crawlmesh", 3 * time.Second},
		// google/robotstxt#51: Crawl-delay does not end a run of User-agent lines.
		{"shared_group", "User-agent: crawlmesh\nCrawl-delay: 4\nUser-agent: shopbot\nDisallow: /\n", "crawlmesh", 4 * time.Second},
		{"shared_group_other", "User-agent: crawlmesh\nCrawl-delay: 4\nUser-agent: shopbot\nDisallow: /\n", "shopbot", 0},
		{"two_agents_one_delay", "User-agent: a\nUser-agent: crawlmesh\nCrawl-delay: 4\n", "crawlmesh", 4 * time.Second},
		{"delay_after_rules", "User-agent: crawlmesh\nDisallow: /x\nCrawl-delay: 4\n", "crawlmesh", 4 * time.Second},
		{"delay_of_later_lines_only", "User-agent: crawlmesh\nCrawl-delay: 1\nUser-agent: *\nCrawl-delay: 9\n", "crawlmesh", time.Second},
		{"global_among_specific", "User-agent: crawlmesh\nCrawl-delay: 1\nUser-agent: *\nCrawl-delay: 9\n", "shopbot", 9 * time.Second},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := Parse([]byte(c.body)).CrawlDelay(c.token); got != c.want {
				t.Errorf("CrawlDelay(%q) = %v, want %v", c.token, got, c.want)
			}
		})
	}
	// google/robotstxt#51, the robots_test.cc case of the fork that fixed it.
	r := Parse([]byte("User-agent: FooBot\nCrawl-delay: 10\nUser-agent: *\nDisallow: /\n"))
	if r.Allowed("FooBot", "/") || r.Allowed("BarBot", "/") {
		t.Error("Crawl-delay line split FooBot from the * group")
	}
}

func TestAllowedURL(t *testing.T) {
	r := Parse([]byte("User-agent: *\n" +
		"Disallow: /\n" +
		"Allow: /foo/bar/ツ\n" +
		"Allow: /a%2fb\n" +
		"Allow: /q?x=é\n" +
		"Allow: /$\n" +
		"Allow: /forced?$\n"))
	for _, c := range []struct {
		url  string
		want bool
	}{
		{"https://h/foo/bar/ツ", true},
		{"https://h/foo/bar/%E3%83%84", true},
		{"https://h/foo/bar/%e3%83%84", true},
		{"https://h/a%2Fb", true},
		{"https://h/a%2fb", true},
		{"https://h/a/b", false},
		{"https://h/q?x=é", true},
		{"https://h/q?x=%c3%a9", true},
		{"https://h", true},
		{"https://h/", true},
		{"https://h/#frag", true},
		{"https://h/x#/foo/bar/ツ", false},
		{"https://h/forced?", true},
		{"https://h/forced", false},
	} {
		u, err := url.Parse(c.url)
		if err != nil {
			t.Fatal(err)
		}
		if got := r.AllowedURL("crawlmesh", u); got != c.want {
			t.Errorf("AllowedURL(%q) = %v, want %v (path %q)", c.url, got, c.want, requestPath(u))
		}
	}
	// Allowed takes the path as given; no leading slash still means from "/".
	if !r.Allowed("crawlmesh", "") || r.Allowed("crawlmesh", "x") || !r.Allowed("crawlmesh", "forced?") {
		t.Error(`Allowed("") / ("x") / ("forced?"): want true / false / true`)
	}
}

func TestMaxSize(t *testing.T) {
	const head = "User-agent: *\nDisallow: /early\n"
	const crossing = "Allow: /early-but-only-this-page\n"
	const cut = len("Allow: /e") // what Google would read of it
	pad := "# " + strings.Repeat("x", 1000) + "\n"
	var b bytes.Buffer
	b.WriteString(head)
	for b.Len()+len(pad) <= MaxSize-cut-2 {
		b.WriteString(pad)
	}
	b.WriteString("#" + strings.Repeat("x", MaxSize-cut-b.Len()-2) + "\n")
	if b.Len() != MaxSize-cut {
		t.Fatalf("built %d bytes before the crossing line, want %d", b.Len(), MaxSize-cut)
	}
	// The line crossing the limit, read shortened, would be "Allow: /e",
	// allowing /early; it must be dropped instead.
	b.WriteString(crossing)
	b.WriteString("Disallow: /late\n")
	r := Parse(b.Bytes())
	if !r.Allowed("crawlmesh", "/e") || r.Allowed("crawlmesh", "/early") {
		t.Error("the line cut at MaxSize was read")
	}
	if !r.Allowed("crawlmesh", "/late") {
		t.Error("a rule after MaxSize was read")
	}
	// A line that ends exactly at the limit is kept.
	const edge = "\nDisallow: /edge"
	body := slices.Concat([]byte(head), bytes.Repeat([]byte("#"), MaxSize-len(head)-len(edge)),
		[]byte(edge+"\nDisallow: /late\n"))
	r = Parse(body)
	if r.Allowed("crawlmesh", "/edge") || !r.Allowed("crawlmesh", "/late") {
		t.Errorf("line ending at MaxSize: /edge allowed %v, /late allowed %v; want false, true",
			r.Allowed("crawlmesh", "/edge"), r.Allowed("crawlmesh", "/late"))
	}
}

// A group of User-agent lines naming nobody and a NUL in a line.
func TestOddLines(t *testing.T) {
	r := Parse([]byte("User-agent: 007\nDisallow: /\n\nUser-agent: *\nDisallow: /a\x00bc\n"))
	if !r.Allowed("", "/x") || r.Allowed("", "/a") || !r.Allowed("crawlmesh", "/b") {
		t.Error("User-agent: 007 or the NUL byte misread")
	}
	// "* bots" is the global group too (Google); "*bot" names nobody.
	r = Parse([]byte("User-agent: * all bots\nDisallow: /x\nUser-agent: *bot\nDisallow: /y\n"))
	if r.Allowed("crawlmesh", "/x") || !r.Allowed("crawlmesh", "/y") {
		t.Error(`"* all bots" or "*bot" misread`)
	}
}
