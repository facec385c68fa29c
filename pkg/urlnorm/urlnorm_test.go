package urlnorm

import (
	"net/url"
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
	for _, s := range []string{"http://a.b/c/../d?e#f", "HTTPS://X:443/%7e/", "http://[::1]:80/a/./b", "http://h/a%2F..%2Fb", "http://h/../../x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		c1, err := Canonical(raw)
		if err != nil {
			return
		}
		c2, err := Canonical(c1)
		if err != nil {
			t.Fatalf("Canonical(%q) = %q, which does not parse again: %v", raw, c1, err)
		}
		if c1 != c2 {
			t.Fatalf("not idempotent: %q -> %q -> %q", raw, c1, c2)
		}
	})
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
