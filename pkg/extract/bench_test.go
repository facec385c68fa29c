package extract_test

import (
	"fmt"
	"strings"
	"testing"
)

const benchOld = `
follow: ["a.l"]
items: [{selector: "div.item", fields: {name: {css: ".name"}, price: {css: ".price"}}}]
`

// benchNew is benchOld with the link checks of the spec fields for real
// sites: what a production spec adds on every link.
const benchNew = benchOld + `
links:
  allow: ["/p/", "/c/"]
  deny: ["/cart", "[?&]add=", "\\.pdf$"]
  strip_query: ["utm_*", "sid", "ref"]
`

// catalogPage is a listing heavier on links than synthsite's: 20 items and
// 100 links, half of them with tracking parameters to strip.
func catalogPage() string {
	var b strings.Builder
	b.WriteString("<!doctype html><html><head><title>Catalog</title></head><body><ul>\n")
	for i := range 100 {
		q := ""
		if i%2 == 0 {
			q = fmt.Sprintf("?utm_source=news&sid=%d&page=%d", i, i%7)
		}
		fmt.Fprintf(&b, "<li><a class=\"l\" href=\"/p/%d.html%s\">Product %d</a></li>\n", i, q, i)
	}
	b.WriteString("</ul>\n")
	for i := range 20 {
		fmt.Fprintf(&b, "<div class=\"item\"><span class=\"name\">Item %d</span><span class=\"price\">%d.99</span><p>Lorem ipsum dolor sit amet, consectetur adipiscing elit.</p></div>\n", i, i)
	}
	b.WriteString("</body></html>\n")
	return b.String()
}

// BenchmarkPage compares pkg/fetch's old extract (goquery) with Page on an
// old-style spec and on the same spec with allow/deny/strip_query.
func BenchmarkPage(b *testing.B) {
	pages := []struct{ name, url, body string }{
		{"synthsite", "http://example.com/p/3.html", synthPage(b, 3)},
		{"catalog", "https://example.com/c/1.html", catalogPage()},
	}
	for _, p := range pages {
		final := mustURL(b, p.url)
		body := []byte(p.body)
		old, niu := rules(b, benchOld), rules(b, benchNew)
		want, err := old.Page(final, "text/html", body)
		if err != nil || len(want.Items) == 0 || len(want.Links) == 0 {
			b.Fatalf("%s: %+v %v", p.name, want, err)
		}
		oldS := specOf(b, benchOld)
		b.Run(p.name+"/old-extract", func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				if _, _, err := oldExtract(body, final, oldS); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(p.name+"/old-spec", func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := old.Page(final, "text/html", body); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(p.name+"/new-rules", func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := niu.Page(final, "text/html", body); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkLink is the per-link cost alone: the catalog's 100 hrefs
// through Link, without and with allow/deny/strip_query.
func BenchmarkLink(b *testing.B) {
	var hrefs []string
	for i := range 100 {
		h := fmt.Sprintf("/p/%d.html", i)
		if i%2 == 0 {
			h += fmt.Sprintf("?utm_source=news&sid=%d&page=%d", i, i%7)
		}
		hrefs = append(hrefs, h)
	}
	base := mustURL(b, "https://example.com/c/1.html")
	for _, c := range []struct{ name, spec string }{{"old-spec", benchOld}, {"new-rules", benchNew}} {
		r := rules(b, c.spec)
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				for _, h := range hrefs {
					if _, ok := r.Link(base, h); !ok {
						b.Fatal(h)
					}
				}
			}
		})
	}
}
