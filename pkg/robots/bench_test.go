package robots

import (
	"fmt"
	"strings"
	"testing"
)

// benchBody is a robots.txt of the size and shape big sites publish: a few
// named groups and a "*" group of 60 rules, a quarter with wildcards.
func benchBody() []byte {
	var b strings.Builder
	for _, a := range []string{"googlebot", "bingbot", "gptbot", "ccbot"} {
		fmt.Fprintf(&b, "User-agent: %s\nDisallow: /search\nAllow: /search/about\n\n", a)
	}
	b.WriteString("User-agent: *\nCrawl-delay: 1\n")
	for i := range 60 {
		switch i % 4 {
		case 0:
			fmt.Fprintf(&b, "Disallow: /*?*sort%d=\n", i)
		case 1:
			fmt.Fprintf(&b, "Disallow: /private/section-%d/\n", i)
		case 2:
			fmt.Fprintf(&b, "Allow: /private/section-%d/public\n", i-1)
		default:
			fmt.Fprintf(&b, "Disallow: /*.ext%d$\n", i)
		}
	}
	b.WriteString("Sitemap: https://example.com/sitemap.xml\n")
	return []byte(b.String())
}

func BenchmarkAllowed(b *testing.B) {
	r := Parse(benchBody())
	paths := []string{
		"/",
		"/catalog/books/some-long-product-name-12345.html",
		"/private/section-29/public/page",
		"/catalog?page=2&sort44=price&utm_source=newsletter",
	}
	for _, p := range paths {
		b.Run(fmt.Sprintf("len%d", len(p)), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				r.Allowed("crawlmesh", p)
			}
		})
	}
}

func BenchmarkParse(b *testing.B) {
	body := benchBody()
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		Parse(body)
	}
}
