package extract_test

import (
	"bytes"
	"net/url"
	"reflect"
	"testing"

	"github.com/crawlmesh/crawlmesh/pkg/extract"
	"github.com/crawlmesh/crawlmesh/pkg/spec"
	"github.com/crawlmesh/crawlmesh/pkg/urlnorm"
)

// richSpec uses every rule kind.
const richSpec = `
links:
  follow: ["a", "link[rel=next]", "area"]
  json: [".next", ".links[]?", "..|.href? // empty"]
  allow: ["^https?://[^/]*example\\.com/"]
  deny: ["/cart", "[?&]add="]
  strip_query: ["utm_*", "sid", "s?d"]
items:
  - selector: "article, div"
    fields:
      title: {css: "h1, h2, h3"}
      sku: {xpath: ".//span[@class='sku']"}
      meta: {xpath: "//meta[@name='x']/@content"}
      price: {css: ".price", regex: "([0-9]+)\\.([0-9]{2})"}
      tags: {css: ".tag", all: true}
      img: {css: img, attr: src}
      href: {xpath: ".//a/@href", all: true}
      n: {xpath: "count(.//*)"}
      s: {xpath: "string(.)", regex: "\\w+"}
    required: [sku]
  - xpath: "//li | //@title | //text()[contains(., 'x')] | //comment()"
    url: "example"
    fields: {t: {}, up: {xpath: "..", all: true}, c: {css: "*"}}
  - json: ".products[]? // .[]?"
    fields:
      name: {json: .name}
      price: {json: ".price", regex: "[0-9]+"}
      tags: {json: ".tags[]?", all: true}
      whole: {}
    required: [name]
`

// oldSpec has none of the spec fields for real sites (and no href or src
// attribute): its results must be exactly the old extract's.
const oldSpec = `
follow: ["a", "[href]"]
items:
  - selector: "article, div, p"
    fields: {t: {css: "h1, b"}, a: {css: "a", attr: title}, whole: {}, id: {attr: id}}
`

func FuzzPage(f *testing.F) {
	f.Add([]byte(shopPage), false)
	f.Add([]byte(apiPage), true)
	f.Add([]byte(`<base href="javascript:x"><a href="/a?sid=1&amp;sad=2&amp;b">a</a><div><span class=sku>1</span><a title="t" href="mailto:x">m</a></div>`), false)
	f.Add([]byte(`<svg><a xlink:href="/svg">s</a></svg><!-- x --><li title="x">li</li><div><span class="sku"></span></div>`), false)
	f.Add([]byte(`{"products": [{"name": 1, "price": 1.5e300, "tags": [{}, [], "x"]}], "next": 7, "links": ["//example.com/a", "\u0000"]}`), true)
	f.Add([]byte(`[[[[[[[[[[{"href": "/deep"}]]]]]]]]]]`), true)
	f.Add([]byte("\x00\xff<a href='http://exa\x00mple.com/'>nul</a><p id=\"\xff\">\u00a0 x \u2003</p>"), false)
	rich := rules(f, richSpec)
	old := rules(f, oldSpec)
	oldS := specOf(f, oldSpec)
	final, _ := url.Parse("https://shop.example.com/cat/list.html?sid=1&page=2")
	f.Fuzz(func(t *testing.T, body []byte, isJSON bool) {
		ct := "text/html"
		if isJSON {
			ct = "application/json"
		}
		res, err := rich.Page(final, ct, body)
		if err != nil {
			if !isJSON {
				t.Fatalf("HTML page refused: %v", err)
			}
			return
		}
		checkResult(t, rich, res)
		if isJSON || bytes.Contains(bytes.ToLower(body), []byte("nofollow")) {
			return
		}
		got, err := old.Page(final, ct, body)
		if err != nil {
			t.Fatal(err)
		}
		items, links, err := oldExtract(body, final, oldS)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got.Links, links) || !reflect.DeepEqual(got.Items, asAny(items)) {
			t.Fatalf("an old spec's result changed:\n got %#v %q\nwant %#v %q", got.Items, got.Links, asAny(items), links)
		}
	})
}

func checkResult(t *testing.T, r *extract.Rules, res extract.Result) {
	seen := map[string]bool{}
	for _, l := range res.Links {
		if seen[l] {
			t.Fatalf("link %q twice", l)
		}
		seen[l] = true
		if c, err := urlnorm.Canonical(l); err != nil || c != l {
			t.Fatalf("link %q is not canonical (%q, %v)", l, c, err)
		}
		if c, ok := r.Link(nil, l); !ok || c != l {
			t.Fatalf("link %q does not pass Link itself (%q, %v)", l, c, ok)
		}
	}
	for _, it := range res.Items {
		for k, v := range it {
			switch v.(type) {
			case string, []string:
			default:
				t.Fatalf("field %s = %T %v", k, v, v)
			}
		}
		if v, ok := it["sku"]; ok && v == "" {
			t.Fatalf("required sku empty in %v", it)
		}
	}
	_ = spec.KindCSS
}
