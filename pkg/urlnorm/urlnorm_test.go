package urlnorm

import (
	"net/url"
	"strings"
	"testing"
)

func TestResolve(t *testing.T) {
	base, _ := url.Parse("http://Example.COM:80/a/b/page.html?x=1#top")
	cases := []struct{ href, want string }{
		{"c.html", "http://example.com/a/b/c.html"},
		{"../c.html", "http://example.com/a/c.html"},
		{"../../../c.html", "http://example.com/c.html"},
		{"./c.html#frag", "http://example.com/a/b/c.html"},
		{"?page=2", "http://example.com/a/b/page.html?page=2"},
		{"//other.org/x", "http://other.org/x"},
		{"HTTPS://Other.org:443", "https://other.org/"},
		{"/x/./y/../z", "http://example.com/x/z"},
		{"", "http://example.com/a/b/page.html?x=1"},
		{"http://example.com:8080/", "http://example.com:8080/"},
		{"/a%2Fb", "http://example.com/a%2Fb"},
		{"/dir/", "http://example.com/dir/"},
		{"/dir/..", "http://example.com/"},
		// A query keeps its bytes but not raw ones: a trailing space would
		// be trimmed when the canonical form is read again.
		{"? #", "http://example.com/a/b/page.html?%20"},
		{"?q=a b&r=%41&s=%zz|{x}", "http://example.com/a/b/page.html?q=a%20b&r=A&s=%25zz%7C%7Bx%7D"},
		// Escapes as RFC 3986 6.2.2 normalises them: unreserved ones
		// decoded, the others upper case; "%2E%2E" is a dot segment.
		{"/pct/%2a?x=%2f", "http://example.com/pct/%2A?x=%2F"},
		{"/pct/%7euser", "http://example.com/pct/~user"},
		{"/pct/~user", "http://example.com/pct/~user"},
		{"/q2?x=%41%2d", "http://example.com/q2?x=A-"},
		{"/dot/%2E%2E/dotx", "http://example.com/dotx"},
		{"/%c3%a9", "http://example.com/%C3%A9"},
		{"/é", "http://example.com/%C3%A9"},
		{"?q=caf\u00e9/x:y@z?w", "http://example.com/a/b/page.html?q=caf%C3%A9/x:y@z?w"},
		// Internationalised hosts go as DNS carries them (punycode).
		{"//b\u00fccher.example/x", "http://xn--bcher-kva.example/x"},
		{"http://B\u00dcCHER.example:8080/", "http://xn--bcher-kva.example:8080/"},
		{"http://shop.xn--bcher-kva.example/", "http://shop.xn--bcher-kva.example/"},
	}
	for _, c := range cases {
		got, err := Resolve(base, c.href)
		if err != nil || got != c.want {
			t.Errorf("Resolve(%q) = %q, %v; want %q", c.href, got, err, c.want)
		}
	}
	for _, bad := range []string{"mailto:x@y.z", "javascript:void(0)", "ftp://h/x", "http:///nohost"} {
		if got, err := Resolve(base, bad); err == nil {
			t.Errorf("Resolve(%q) = %q, want an error", bad, got)
		}
	}
}

func FuzzCanonical(f *testing.F) {
	for _, s := range []string{"http://a.b/c/../d?e#f", "HTTPS://X:443/%7e/", "http://[::1]:80/a/./b", "http://h/a%2F..%2Fb",
		"http://h/../../x", "http://user:pw@h.example./?", "http://h/%zz", "http://h:0/a b", "https://[fe80::1%25eth0]:8443/",
		"http://h/;p?q=%2F#%", " http://h/\t", "http://h/a/%2e%2e/b", "http://xn--bcher-kva.example/ä"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		c1, err := Canonical(raw)
		if err != nil {
			return
		}
		checkCanonical(t, raw, c1)
	})
}

// FuzzResolve resolves arbitrary hrefs against arbitrary base URLs, as a
// worker does with every link of a page.
func FuzzResolve(f *testing.F) {
	for _, c := range [][2]string{
		{"http://Example.COM:80/a/b/page.html?x=1#top", "../c.html"},
		{"http://example.com/a/", "//other.org:443/x?y#z"},
		{"https://example.com/", "HTTP://Other.org:80"},
		{"http://example.com/a/b", "?page=2"},
		{"http://example.com/a/b", "../../../../x"},
		{"http://example.com/a%2Fb/c", "./%2e%2e/d"},
		{"http://example.com/", "mailto:x@y.z"},
		{"http://example.com/", " \t/sp ace\n"},
		{"http://[::1]:8080/", "/a;b=c/../d"},
		{"http://example.com/", "http://a@b@c/"},
	} {
		f.Add(c[0], c[1])
	}
	f.Fuzz(func(t *testing.T, rawBase, href string) {
		base, err := url.Parse(rawBase)
		if err != nil {
			return
		}
		r, err := Resolve(base, href)
		if err != nil {
			return
		}
		checkCanonical(t, href, r)
	})
}

// checkCanonical asserts what the seen set relies on for c, the canonical
// form of in: it is a fixed point of Canonical and an absolute http(s) URL
// in the documented form.
func checkCanonical(t *testing.T, in, c string) {
	t.Helper()
	c2, err := Canonical(c)
	if err != nil {
		t.Fatalf("%q -> %q, which is refused again: %v", in, c, err)
	}
	if c2 != c {
		t.Fatalf("not idempotent: %q -> %q -> %q", in, c, c2)
	}
	u, err := url.Parse(c)
	if err != nil {
		t.Fatalf("%q -> %q, which does not parse: %v", in, c, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Host != strings.ToLower(u.Host) ||
		u.User != nil || u.Fragment != "" || strings.Contains(c, "#") || !strings.HasPrefix(u.EscapedPath(), "/") {
		t.Fatalf("%q -> %q: not lower-case http(s) with a host and a path, without user or fragment", in, c)
	}
	if (u.Scheme == "http" && u.Port() == "80") || (u.Scheme == "https" && u.Port() == "443") {
		t.Fatalf("%q -> %q: default port kept", in, c)
	}
	rest := c[strings.Index(c, "://")+3:]
	for i := strings.IndexByte(rest, '%'); i >= 0; i = strings.IndexByte(rest, '%') {
		esc := rest[i:min(i+3, len(rest))]
		rest = rest[i+1:]
		if len(esc) < 3 || !isHex(esc[1]) || !isHex(esc[2]) {
			if strings.Contains(u.Host, "%") {
				continue // an IPv6 zone ("%25eth0") is the host's own
			}
			t.Fatalf("%q -> %q: %q is no escape", in, c, esc)
		}
		if esc != strings.ToUpper(esc) {
			t.Fatalf("%q -> %q: escape %s in lower case", in, c, esc)
		}
		if ch := unhex(esc[1])<<4 | unhex(esc[2]); unreserved(ch) {
			t.Fatalf("%q -> %q: unreserved %q escaped as %s", in, c, ch, esc)
		}
	}
}

// BenchmarkResolve is the cost of one link: resolution and canonical form.
func BenchmarkResolve(b *testing.B) {
	base, _ := url.Parse("http://example.com/catalogue/page-2.html")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Resolve(base, "../book/a-light-in-the-attic_1000/index.html#x"); err != nil {
			b.Fatal(err)
		}
	}
}
