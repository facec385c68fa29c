package robots

// Ports of the robots_test.cc TESTs that look at the parser and its helpers
// rather than at IsUserAgentAllowed; see google_test.go.

import (
	"net/url"
	"testing"
)

// ID_VerifyValidUserAgentsToObey and the first EXPECT of
// GoogleOnly_AcceptUserAgentUpToFirstSpace: IsValidUserAgentToObey.
func TestGoogleValidProductToken(t *testing.T) {
	for _, c := range []struct {
		name  string
		token string
		want  bool
	}{
		{"ID_VerifyValidUserAgentsToObey/1", "Foobot", true},
		{"ID_VerifyValidUserAgentsToObey/2", "Foobot-Bar", true},
		{"ID_VerifyValidUserAgentsToObey/3", "Foo_Bar", true},
		{"ID_VerifyValidUserAgentsToObey/4", "", false}, // absl::string_view()
		{"ID_VerifyValidUserAgentsToObey/5", "", false},
		{"ID_VerifyValidUserAgentsToObey/6", "ツ", false},
		{"ID_VerifyValidUserAgentsToObey/7", "Foobot*", false},
		{"ID_VerifyValidUserAgentsToObey/8", " Foobot ", false},
		{"ID_VerifyValidUserAgentsToObey/9", "Foobot/2.1", false},
		{"ID_VerifyValidUserAgentsToObey/10", "Foobot Bar", false},
		{"GoogleOnly_AcceptUserAgentUpToFirstSpace/0", "Foobot Bar", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := ValidProductToken(c.token); got != c.want {
				t.Errorf("ValidProductToken(%q) = %v, want %v", c.token, got, c.want)
			}
		})
	}
}

// stats is Google's RobotsStatsReporter over the scan callback: valid
// counts user-agent, allow, disallow and sitemap lines; unknown counts
// other "name: value" lines (Crawl-delay among them, as Google does not
// know it); last is the number of the last line holding either.
type stats struct {
	valid, unknown, last int
	sitemap              string
}

func report(body string) stats {
	var s stats
	scan(body, func(l line) {
		switch l.key {
		case keyNone:
			return
		case keyUserAgent, keyAllow, keyDisallow, keySitemap:
			s.valid++
		default:
			s.unknown++
		}
		if l.key == keySitemap {
			s.sitemap += l.value
		}
		s.last = l.num
	})
	return s
}

func TestGoogleLinesNumbersAreCountedCorrectly(t *testing.T) {
	for _, c := range []struct{ name, body string }{
		{"unix", "User-Agent: foo\n" +
			"Allow: /some/path\n" +
			"User-Agent: bar\n" +
			"\n" +
			"\n" +
			"Disallow: /\n"},
		{"dos", "User-Agent: foo\r\n" +
			"Allow: /some/path\r\n" +
			"User-Agent: bar\r\n" +
			"\r\n" +
			"\r\n" +
			"Disallow: /\r\n"},
		{"mac", "User-Agent: foo\r" +
			"Allow: /some/path\r" +
			"User-Agent: bar\r" +
			"\r" +
			"\r" +
			"Disallow: /\r"},
		{"no_final_newline", "User-Agent: foo\n" +
			"Allow: /some/path\n" +
			"User-Agent: bar\n" +
			"\n" +
			"\n" +
			"Disallow: /"},
		{"mixed", "User-Agent: foo\n" +
			"Allow: /some/path\r\n" +
			"User-Agent: bar\n" +
			"\r\n" +
			"\n" +
			"Disallow: /"},
	} {
		t.Run("ID_LinesNumbersAreCountedCorrectly/"+c.name, func(t *testing.T) {
			s := report(c.body)
			if s.valid != 4 || s.last != 6 {
				t.Errorf("valid directives %d, last line %d; want 4, 6", s.valid, s.last)
			}
		})
	}
}

func TestGoogleUTF8ByteOrderMarkIsSkipped(t *testing.T) {
	for _, c := range []struct {
		name           string
		body           string
		valid, unknown int
	}{
		{"full_bom", "\xEF\xBB\xBF" + "User-Agent: foo\nAllow: /AnyValue\n", 2, 0},
		{"partial_2", "\xEF\xBB" + "User-Agent: foo\nAllow: /AnyValue\n", 2, 0},
		{"partial_1", "\xEF" + "User-Agent: foo\nAllow: /AnyValue\n", 2, 0},
		// Not a BOM: the first line is garbage ("\x11\xBFUser-Agent").
		{"broken_bom", "\xEF\x11\xBF" + "User-Agent: foo\nAllow: /AnyValue\n", 1, 1},
		// A BOM is skipped only at the start of the file.
		{"bom_in_middle", "User-Agent: foo\n" + "\xEF\xBB\xBF" + "Allow: /AnyValue\n", 1, 1},
	} {
		t.Run("ID_UTF8ByteOrderMarkIsSkipped/"+c.name, func(t *testing.T) {
			s := report(c.body)
			if s.valid != c.valid || s.unknown != c.unknown {
				t.Errorf("valid %d, unknown %d; want %d, %d", s.valid, s.unknown, c.valid, c.unknown)
			}
		})
	}
}

func TestGoogleNonStandardLineExample_Sitemap(t *testing.T) {
	const loc = "http://foo.bar/sitemap.xml"
	const rest = "User-Agent: foo\n" +
		"Allow: /some/path\n" +
		"User-Agent: bar\n" +
		"\n" +
		"\n"
	for _, c := range []struct{ name, body string }{
		{"ID_NonStandardLineExample_Sitemap/1", rest + "Sitemap: " + loc + "\n"},
		// A sitemap line may appear anywhere in the file.
		{"ID_NonStandardLineExample_Sitemap/2", "Sitemap: " + loc + "\n" + rest},
	} {
		t.Run(c.name, func(t *testing.T) {
			if s := report(c.body); s.sitemap != loc {
				t.Errorf("reported sitemap %q, want %q", s.sitemap, loc)
			}
			if got := Parse([]byte(c.body)).Sitemaps(); len(got) != 1 || got[0] != loc {
				t.Errorf("Sitemaps() = %q, want [%q]", got, loc)
			}
		})
	}
}

// TestGoogleGetPathParamsQuery ports the inputs of TestGetPathParamsQuery
// that are URLs (see the top of this file for the rest).
func TestGoogleGetPathParamsQuery(t *testing.T) {
	for _, c := range []struct{ url, want string }{
		{"", "/"},
		{"http://www.example.com", "/"},
		{"http://www.example.com/", "/"},
		{"http://www.example.com/a", "/a"},
		{"http://www.example.com/a/", "/a/"},
		{"http://www.example.com/a/b?c=http://d.e/", "/a/b?c=http://d.e/"},
		{"http://www.example.com/a/b?c=d&e=f#fragment", "/a/b?c=d&e=f"},
		{"/a", "/a"},
		{"//a/b/c", "/b/c"},
	} {
		t.Run("TestGetPathParamsQuery/"+c.url, func(t *testing.T) {
			u, err := url.Parse(c.url)
			if err != nil {
				t.Fatal(err)
			}
			if got := requestPath(u); got != c.want {
				t.Errorf("requestPath(%q) = %q, want %q", c.url, got, c.want)
			}
		})
	}
}

func TestGoogleMaybeEscapePattern(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"http://www.example.com", "http://www.example.com"},
		{"/a/b/c", "/a/b/c"},
		{"á", "%C3%A1"},
		{"%aa", "%AA"},
	} {
		t.Run("TestMaybeEscapePattern/"+c.in, func(t *testing.T) {
			if got := escapePattern(c.in); got != c.want {
				t.Errorf("escapePattern(%q) = %q, want %q", c.in, got, c.want)
			}
		})
	}
}
