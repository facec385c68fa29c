// Package gospiders holds the spiders written in Go that every crawlmesh
// worker registers. A spec names one with `go: NAME` (plus start_urls,
// allowed_domains and limits as usual) and is started like any other.
//
// To add one, write a fetch.GoSpider — it configures the colly collector
// of one page and reports items and links to its Output — and add it to
// [Builtin]. Links it reports go through the same canonical form,
// allowed_domains, max_depth, max_pages and mesh-wide de-duplication as
// links found by CSS selectors.
package gospiders

import (
	"strings"

	"github.com/gocolly/colly/v2"

	"github.com/crawlmesh/crawlmesh/pkg/fetch"
)

// Builtin returns the Go spiders workers register by default.
func Builtin() map[string]fetch.GoSpider {
	return map[string]fetch.GoSpider{
		"titles": Titles,
	}
}

// Titles follows every link and yields one item per page: its title, first
// h1 and meta description — a site inventory.
func Titles(c *colly.Collector, out *fetch.Output) {
	c.OnHTML("html", func(e *colly.HTMLElement) {
		desc, _ := e.DOM.Find(`meta[name="description"]`).Attr("content")
		out.Item(map[string]string{
			"title":       clean(e.DOM.Find("title").First().Text()),
			"h1":          clean(e.DOM.Find("h1").First().Text()),
			"description": clean(desc),
		})
	})
	c.OnHTML("a[href]", func(e *colly.HTMLElement) { out.Link(e.Attr("href")) })
}

func clean(s string) string { return strings.Join(strings.Fields(s), " ") }
