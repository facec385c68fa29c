package extract_test

import (
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
)

const shopPage = `<!doctype html>
<html><head><base href="/shop/"><meta name="x" content=" meta value "><title>Shop</title></head>
<body>
<article class="product">
  <h1> Tea
     pot </h1><span class="sku">SKU-1</span><span class="price">Price: 12.50 EUR</span>
  <span class="tag">red</span><span class="tag">  big </span>
  <img src="img/tea.png?utm_source=x&amp;id=1" alt=" A pot "><a href="../p/1?sid=abc#top">more</a>
</article>
<article class="product">
  <span class="sku">SKU-2</span><span class="price">n/a</span><img alt="none">
</article>
<div class="offer"><h2>Offer A</h2><ul><li>1</li><li>2</li></ul></div>
<div class="offer"><h2>Offer B</h2></div>
<div id="pager">
  <a href="?page=2&amp;utm_campaign=z">next</a>
  <a rel="nofollow" href="/cart">cart</a>
  <a rel="external NoFollow" href="/x">x</a>
  <a href="/p/2?sid=1">p2</a><a href="/p/2?sid=2">p2 again</a>
  <a href="/p/3?utm_source=a&amp;b=1&amp;utm_medium=c">p3</a>
  <a href="mailto:a@example.com">mail</a><a href="http://other.example/">off</a>
  <a>no href</a>
</div>
</body></html>`

const shopURL = "https://example.com/dir/list.html?x=1"

func TestHTMLFields(t *testing.T) {
	r := rules(t, `
links: {strip_query: ["utm_*", sid]}
items:
  - selector: article.product
    fields:
      title: {css: h1}
      sku: {xpath: ".//span[@class='sku']"}
      meta: {xpath: "//meta[@name='x']/@content"}
      price: {css: .price, regex: "[0-9]+\\.[0-9]{2}"}
      euros: {css: .price, regex: "Price: ([0-9]+)"}
      tags: {css: .tag, all: true}
      rtags: {css: .tag, regex: "^r(.*)", all: true}
      image: {css: img, attr: src}
      alt: {css: img, attr: alt}
      link: {css: a, attr: href}
      whole: {}
      n: {xpath: "count(.//span)"}
      hrefs: {xpath: ".//a/@href", all: true}
      ximg: {xpath: ".//img", attr: src}
`)
	res := page(t, r, shopURL, "text/html; charset=utf-8", shopPage)
	want := []map[string]any{
		{
			"title": "Tea pot", "sku": "SKU-1", "meta": "meta value", "price": "12.50", "euros": "12",
			"tags": []string{"red", "big"}, "rtags": []string{"ed"},
			"image": "https://example.com/shop/img/tea.png?id=1", "alt": "A pot",
			"link":  "https://example.com/p/1",
			"whole": "Tea pot SKU-1Price: 12.50 EUR red big more", "n": "4",
			"hrefs": []string{"https://example.com/p/1"}, "ximg": "https://example.com/shop/img/tea.png?id=1",
		},
		{
			// No match: "" as ever for css and xpath; a regex matching
			// nothing is missing; all gives an empty list.
			"title": "", "sku": "SKU-2", "meta": "meta value",
			"tags": []string{}, "rtags": []string{},
			"image": "", "alt": "none", "link": "", "whole": "SKU-2n/a", "n": "2",
			"hrefs": []string{}, "ximg": "",
		},
	}
	if !reflect.DeepEqual(res.Items, want) {
		t.Errorf("items:\n got %#v\nwant %#v", res.Items, want)
	}
	if res.Incomplete != 0 {
		t.Errorf("Incomplete = %d", res.Incomplete)
	}
}

func TestHTMLRequired(t *testing.T) {
	for _, c := range []struct {
		required   string
		items, inc int
	}{
		{"[title]", 1, 1}, // "" is not a value
		{"[price]", 1, 1}, // regex matched nothing
		{"[tags]", 1, 1},  // empty list
		{"[sku]", 2, 0},   // both have one
		{"[]", 2, 0},      // none required
		{"[sku, title]", 1, 1},
	} {
		r := rules(t, `
items:
  - selector: article.product
    fields:
      title: {css: h1}
      sku: {xpath: ".//span[@class='sku']"}
      price: {css: .price, regex: "[0-9]+\\.[0-9]{2}"}
      tags: {css: .tag, all: true}
    required: `+c.required+"\n")
		res := page(t, r, shopURL, "text/html", shopPage)
		if len(res.Items) != c.items || res.Incomplete != c.inc {
			t.Errorf("required %s: %d items, %d incomplete; want %d, %d", c.required, len(res.Items), res.Incomplete, c.items, c.inc)
		}
	}
}

func TestHTMLXPathItems(t *testing.T) {
	r := rules(t, `
items:
  - xpath: "//div[@class='offer']"
    fields:
      name: {css: h2}
      first: {xpath: "string(.//li)"}
      lis: {xpath: ".//li", all: true}
      title: {xpath: "//title"}
  - xpath: "//img/@alt"
    fields:
      alt: {}
`)
	res := page(t, r, shopURL, "", shopPage)
	want := []map[string]any{
		{"name": "Offer A", "first": "1", "lis": []string{"1", "2"}, "title": "Shop"},
		{"name": "Offer B", "first": "", "lis": []string{}, "title": "Shop"},
		{"alt": "A pot"},
		{"alt": "none"},
	}
	if !reflect.DeepEqual(res.Items, want) {
		t.Errorf("items:\n got %#v\nwant %#v", res.Items, want)
	}
}

func TestHTMLURLFilter(t *testing.T) {
	r := rules(t, `
links: {strip_query: [sid]}
items:
  - selector: h1
    url: "/p/[0-9]+$"
    fields: {t: {}}
  - selector: title
    fields: {t: {}}
`)
	body := "<title>T</title><h1>Product</h1>"
	if res := page(t, r, shopURL, "", body); len(res.Items) != 1 || res.Items[0]["t"] != "T" {
		t.Errorf("list page items = %v, want only the unfiltered rule's", res.Items)
	}
	// The filter sees the URL as the crawl names it: strip_query applied.
	if res := page(t, r, "https://EXAMPLE.com/p/7?sid=1", "", body); len(res.Items) != 2 {
		t.Errorf("product page items = %v, want both rules'", res.Items)
	}
}

// An item rule's url pattern matches the decoded URL too, as link rules
// do: "/bücher/" allowed the crawl into /b%C3%BCcher/1, whose items it
// then never took (found by review).
func TestHTMLURLFilterDecoded(t *testing.T) {
	r := rules(t, `
items:
  - selector: h1
    url: "/bücher/"
    fields: {t: {}}
`)
	for _, u := range []string{"https://example.com/bücher/1", "https://example.com/b%C3%BCcher/2"} {
		if res := page(t, r, u, "", "<h1>Buch</h1>"); len(res.Items) != 1 {
			t.Errorf("%s: items %v, want the rule's", u, res.Items)
		}
	}
	if res := page(t, r, "https://example.com/other/1", "", "<h1>x</h1>"); len(res.Items) != 0 {
		t.Errorf("other page: items %v, want none", res.Items)
	}
}

// An empty href is the page itself, as browsers read it; an empty src
// stays empty (found by review: href="" came back "").
func TestHTMLEmptyHref(t *testing.T) {
	r := rules(t, `
items:
  - selector: div
    fields: {self: {css: a, attr: href}, img: {css: img, attr: src}}
`)
	res := page(t, r, "https://example.com/list?n=2", "", `<div><a href="">more</a><img src=""></div>`)
	want := []map[string]any{{"self": "https://example.com/list?n=2", "img": ""}}
	if !reflect.DeepEqual(res.Items, want) {
		t.Errorf("items %#v, want %#v", res.Items, want)
	}
}

// A field's text reads as a reader sees it: <br> and block elements
// separate words, script and style are no text, inline elements join
// (found by review: "1 Main StSpringfield", "para1para2", "with var s =
// 1;script.a{}").
func TestHTMLFieldText(t *testing.T) {
	r := rules(t, `
items:
  - selector: article
    fields: {addr: {css: h2}, body: {css: div}, note: {css: h3}, name: {css: h4}, row: {css: tr}}
`)
	body := `<article><h2>1 Main St<br>Springfield</h2><div><p>para1</p><p>para2</p></div>` +
		`<h3>with <script>var s = 1;</script>script<style>.a{}</style></h3><h4><b>Bold</b>face <i>x</i></h4>` +
		`<table><tr><td>c</td><td>d</td></tr></table></article>`
	res := page(t, r, "https://example.com/a", "", body)
	want := []map[string]any{{"addr": "1 Main St Springfield", "body": "para1 para2", "note": "with script", "name": "Boldface x", "row": "c d"}}
	if !reflect.DeepEqual(res.Items, want) {
		t.Errorf("items\n got %#v\nwant %#v", res.Items, want)
	}
}

func TestHTMLLinks(t *testing.T) {
	for _, c := range []struct {
		what, links string
		want        []string
	}{
		{"old follow, nofollow honoured by default", `follow: ["#pager a"]`, []string{
			"https://example.com/shop/?page=2&utm_campaign=z",
			"https://example.com/p/2?sid=1", "https://example.com/p/2?sid=2",
			"https://example.com/p/3?utm_source=a&b=1&utm_medium=c",
		}},
		{"nofollow off", `links: {follow: ["#pager a"], nofollow: false}`, []string{
			"https://example.com/shop/?page=2&utm_campaign=z", "https://example.com/cart", "https://example.com/x",
			"https://example.com/p/2?sid=1", "https://example.com/p/2?sid=2",
			"https://example.com/p/3?utm_source=a&b=1&utm_medium=c",
		}},
		{"strip_query collapses variants", `links: {follow: ["#pager a"], strip_query: ["utm_*", sid]}`, []string{
			"https://example.com/shop/?page=2", "https://example.com/p/2", "https://example.com/p/3?b=1",
		}},
		{"allow", `links: {follow: ["#pager a"], allow: ["/p/"]}`, []string{
			"https://example.com/p/2?sid=1", "https://example.com/p/2?sid=2",
			"https://example.com/p/3?utm_source=a&b=1&utm_medium=c",
		}},
		{"allow and deny on the whole canonical URL", `links: {follow: ["#pager a"], allow: ["/p/", "page="], deny: ["[?&]sid=2", "^https://example\\.com/p/3"]}`, []string{
			"https://example.com/shop/?page=2&utm_campaign=z", "https://example.com/p/2?sid=1",
		}},
		{"deny sees the stripped URL", `links: {follow: ["#pager a"], strip_query: [sid], deny: ["sid="]}`, []string{
			"https://example.com/shop/?page=2&utm_campaign=z", "https://example.com/p/2",
			"https://example.com/p/3?utm_source=a&b=1&utm_medium=c",
		}},
		{"no follow: no links", ``, nil},
	} {
		r := rules(t, c.links+"\n")
		res := page(t, r, shopURL, "text/html", shopPage)
		if !reflect.DeepEqual(res.Links, c.want) {
			t.Errorf("%s:\n got %q\nwant %q", c.what, res.Links, c.want)
		}
	}
}

// Rules are shared by every task of a worker.
func TestConcurrentPages(t *testing.T) {
	r := rules(t, `
links: {follow: [a], strip_query: [sid]}
items:
  - xpath: "//article"
    fields: {sku: {xpath: ".//span[@class='sku']"}, n: {xpath: "count(.//span)"}, t: {css: h1}}
`)
	want := page(t, r, shopURL, "", shopPage)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 50 {
				res, err := r.Page(mustURL(t, shopURL), "", []byte(shopPage))
				if err != nil || !reflect.DeepEqual(res, want) {
					t.Errorf("concurrent Page = %v, %v", res, err)
					return
				}
			}
		})
	}
	wg.Wait()
}

// TestHTMLDeeplyUnclosed: a page of 600 unclosed elements passes the
// parser's 512 open elements; it failed whole, every item and link lost
// (found by review). Browsers render it, and so it is read.
func TestHTMLDeeplyUnclosed(t *testing.T) {
	var b strings.Builder
	b.WriteString("<html><body>")
	for i := range 600 {
		fmt.Fprintf(&b, `<div class="item"><a href="/u/%d">item %d</a>`, i, i)
	}
	b.WriteString("</body></html>")
	r := rules(t, "follow: [a]\nitems: [{selector: div.item, fields: {name: {css: a}}}]\n")
	res := page(t, r, "https://example.com/", "text/html", b.String())
	if len(res.Items) != 600 || len(res.Links) != 600 {
		t.Fatalf("%d items, %d links; want 600 of each", len(res.Items), len(res.Links))
	}
	if res.Items[599]["name"] != "item 599" {
		t.Errorf("last item %v", res.Items[599])
	}
}
