package shopsite

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"html"
	"strings"
)

// card is one product link on a list page. href is written as is: the
// spellings (relative, tracking parameters, redirects) are the point.
type card struct {
	id   int
	href string
}

// list is a list page: /c/NAME[?page=N] or /members/.
type list struct {
	title    string
	cards    []card
	pager    string // <ul class="pager"> links, raw HTML
	extra    string // more links inside <main>, raw HTML (traps, duplicates)
	teaserID int    // a product-looking teaser, 0 for none
}

// lists is every list page by path and query, as requested.
var lists = map[string]list{
	"/c/tools": {
		title: "Tools", teaserID: 1,
		cards: []card{{1, "/p/1"}, {2, "../p/2"}, {3, "/p/3?utm_source=x&amp;utm_medium=y"},
			{4, "/p/4?sid=123"}, {5, "/p/old-5"}, {6, "/p/legacy-6"}},
		pager: `<li><a href="?page=2">next</a></li>`,
		extra: `<p><a rel="nofollow" href="/p/clearance">Clearance sale</a></p>`,
	},
	"/c/tools?page=2": {
		title: "Tools, page 2", teaserID: 7,
		cards: []card{{7, "/p/7"}, {8, "/p/8"}, {9, "/p/9?sid=42&amp;utm_campaign=spring"}, {10, "/p/10"}},
		pager: `<li><a href="/c/tools">previous</a></li>`,
		extra: `<p>Popular: <a href="/p/3?sid=123">Cordless Drill</a></p>` +
			`<p><a rel="noopener nofollow" href="/p/clearance-2">More clearance</a></p>`,
	},
	"/c/garden": {
		title: "Garden", teaserID: 11,
		cards: []card{{11, "/p/11"}, {12, "/p/12"}, {13, "/p/13"}, {14, "/p/14"}, {15, "/p/15"}, {16, "/p/16"}, {secret1ID, "/p/secret-1"}},
	},
	"/c/kitchen": {
		title: "Kitchen", teaserID: 17,
		cards: []card{{17, "/p/17"}, {18, "/p/18"}, {23, "/p/23"}, {24, "/p/24"}},
		extra: `<p>Also in the garden: <a href="/p/12?utm_source=kitchen">planter</a></p>`,
	},
	"/c/archive": {
		title: "Archive",
		cards: []card{{archiveID, "/p/50"}},
	},
	"/members/": {
		title: "Members",
		cards: []card{{25, "/members/p/25"}, {26, "/members/p/26"}, {27, "/members/p/27"}},
	},
}

// redirects: old product URLs, answered before the page itself.
var redirects = map[string]struct {
	to   string
	code int
}{
	"/p/old-5":    {"/p/5", 301},
	"/p/legacy-6": {"/p/old-6", 302}, // two hops
	"/p/old-6":    {"/p/6", 301},
}

// trapProducts maps the product paths a correct crawl never requests.
var trapProducts = map[string]int{
	"/p/50":          archiveID,
	"/p/clearance":   clearanceID,
	"/p/clearance-2": clearance2ID,
	"/p/secret-1":    secret1ID,
	"/p/secret-2":    secret2ID,
}

func head(b *bytes.Buffer, title string) {
	fmt.Fprintf(b, "<!DOCTYPE html>\n<html lang=\"en\">\n<head><meta charset=\"utf-8\"><title>%s | Loopback Shop</title></head>\n<body>\n", html.EscapeString(title))
	// The nav is on every page and followed: it reaches the sections, the
	// API, and the blog that links.allow must keep out.
	b.WriteString(`<nav><a href="/">Home</a> <a href="/c/tools">Tools</a> <a href="/c/garden">Garden</a> ` +
		`<a href="/c/kitchen">Kitchen</a> <a href="/members/">Members</a> <a href="/api/products?page=1">API</a> ` +
		`<a href="/blog/welcome">Blog</a></nav>` + "\n<main>\n")
}

func foot(b *bytes.Buffer) {
	// Not followed (links.follow names nav and main only): the archive
	// is reachable from here alone.
	b.WriteString("</main>\n<footer><a href=\"/c/archive\">Archive</a> <a href=\"/login\">Log in</a></footer>\n</body>\n</html>\n")
}

func priceText(id int, usd bool) string {
	cents, cur := eurCents(id), "EUR"
	if usd {
		cents, cur = usdCents(id), "USD"
	}
	t := "Price: " + money(cents) + " " + cur
	if onSale(id) {
		t += " (was " + money(wasCents(cents)) + " " + cur + ")"
	}
	return t
}

// productDiv is the product block, the same on product pages and in
// teasers, so only the item rule's url: filter tells them apart.
func productDiv(b *bytes.Buffer, p product, class string, usd bool) {
	fmt.Fprintf(b, "<div class=\"%s\">\n", class)
	switch p.title {
	case "":
	case " ":
		b.WriteString("<h1>   </h1>\n")
	default:
		fmt.Fprintf(b, "<h1>%s</h1>\n", html.EscapeString(p.title))
	}
	fmt.Fprintf(b, "<span class=\"brand\" data-brand=\"%s\">%s</span>\n", p.brand, strings.ToUpper(p.brand))
	fmt.Fprintf(b, "<p>SKU: <span class=\"sku\">%s</span></p>\n", sku(p.id))
	fmt.Fprintf(b, "<meta itemprop=\"gtin13\" content=\"%s\">\n", gtin(p.id))
	fmt.Fprintf(b, "<p class=\"price\">%s</p>\n<ul class=\"tags\">", priceText(p.id, usd))
	for _, t := range p.tags {
		fmt.Fprintf(b, "<li class=\"tag\">%s</li>", t)
	}
	// Relative with a dot segment: the field must come back absolute.
	fmt.Fprintf(b, "</ul>\n<img class=\"main\" src=\"../img/p%d.jpg\" alt=\"\">\n", p.id)
}

func productPage(p product, back string, usd bool) []byte {
	var b bytes.Buffer
	head(&b, fmt.Sprintf("Product %d", p.id))
	productDiv(&b, p, "product", usd)
	// The cart link is followed by the selectors and must be denied.
	fmt.Fprintf(&b, "<p><a class=\"cart\" href=\"/cart?add=%d\">Add to cart</a></p>\n</div>\n", p.id)
	fmt.Fprintf(&b, "<p><a href=\"%s\">Back</a></p>\n", back)
	foot(&b)
	return b.Bytes()
}

func listPage(l list, usd bool) []byte {
	var b bytes.Buffer
	head(&b, l.title)
	fmt.Fprintf(&b, "<h2>%s</h2>\n", html.EscapeString(l.title))
	if l.teaserID != 0 {
		productDiv(&b, products[l.teaserID], "product teaser", usd)
		b.WriteString("</div>\n")
	}
	b.WriteString("<ul class=\"cards\">\n")
	for _, c := range l.cards {
		p := products[c.id]
		name := p.title
		if strings.TrimSpace(name) == "" {
			name = sku(c.id)
		}
		fmt.Fprintf(&b, "<li class=\"card\"><a href=\"%s\">%s</a> <span>%s</span></li>\n", c.href, html.EscapeString(name), priceText(c.id, usd))
	}
	b.WriteString("</ul>\n")
	if l.pager != "" {
		b.WriteString("<ul class=\"pager\">" + l.pager + "</ul>\n")
	}
	b.WriteString(l.extra + "\n")
	foot(&b)
	return b.Bytes()
}

func homePage(usd bool) []byte {
	var b bytes.Buffer
	head(&b, "Home")
	b.WriteString("<h2>Deal of the day</h2>\n")
	productDiv(&b, products[2], "product teaser", usd)
	b.WriteString("<p><a href=\"/p/2\">See the deal</a></p></div>\n")
	// Passes links.allow (/p/) and robots; only the deny rule [?&]add=
	// keeps it out.
	b.WriteString("<p><a class=\"quick\" href=\"/p/8?ref=home&amp;add=8\">Quick add: Socket Set</a></p>\n")
	foot(&b)
	return b.Bytes()
}

func simplePage(title, body string) []byte {
	var b bytes.Buffer
	head(&b, title)
	b.WriteString(body + "\n")
	foot(&b)
	return b.Bytes()
}

func loginForm() []byte {
	return simplePage("Log in", `<form method="post" action="/login"><input name="user"> <input type="password" name="password"> <button>Log in</button></form>`)
}

func robotsTxt(base string) []byte {
	return []byte(`# The * group shuts out everything a crawler needs, so using the wrong
# group fails the crawl; "shop" is a decoy for prefix matching.
User-agent: *
Disallow: /c/
Disallow: /p/
Disallow: /members/
Disallow: /api/

User-agent: shop
Disallow: /

User-agent: shopbot
Disallow: /p/secret-
Disallow: /cart

Sitemap: ` + base + `/sitemap_index.xml
`)
}

const xmlHead = `<?xml version="1.0" encoding="UTF-8"?>` + "\n"

func sitemapIndex(base string) []byte {
	return []byte(xmlHead + `<sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">
  <sitemap><loc>` + base + `/sitemaps/products.xml.gz</loc><lastmod>2024-05-01</lastmod></sitemap>
  <sitemap><loc>` + base + `/sitemaps/pages.xml</loc></sitemap>
</sitemapindex>
`)
}

// productsSitemap lists the sitemap-only products, plus URLs that must be
// filtered like links: a duplicate, a tracking variant, a robots-disallowed
// page, a cart URL and another host.
func productsSitemap(base, host string) []byte {
	var b bytes.Buffer
	b.WriteString(xmlHead + `<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9" xmlns:image="http://www.google.com/schemas/sitemap-image/1.1">` + "\n")
	for _, id := range sitemapOnly {
		fmt.Fprintf(&b, "  <url>\n    <loc>\n      %s/p/%d\n    </loc>\n    <lastmod>2024-05-01</lastmod>\n    <image:image><image:loc>%s/img/p%d.jpg</image:loc></image:image>\n  </url>\n", base, id, base, id)
	}
	for _, loc := range []string{base + "/p/1", base + "/p/3?utm_source=sitemap", base + "/p/secret-2", base + "/cart?add=19"} {
		fmt.Fprintf(&b, "  <url><loc>%s</loc></url>\n", loc)
	}
	if port, ok := strings.CutPrefix(host, "127.0.0.1:"); ok {
		// Same server, another name: outside allowed_domains.
		fmt.Fprintf(&b, "  <url><loc>http://localhost:%s/p/1</loc></url>\n", port)
	}
	b.WriteString("</urlset>\n")
	var z bytes.Buffer
	zw := gzip.NewWriter(&z)
	_, _ = zw.Write(b.Bytes())
	_ = zw.Close()
	return z.Bytes()
}

func pagesSitemap(base string) []byte {
	var b bytes.Buffer
	b.WriteString(xmlHead + `<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">` + "\n")
	for _, p := range []string{"/", "/c/tools", "/c/garden", "/c/kitchen", "/members/"} {
		fmt.Fprintf(&b, "  <url><loc>%s%s</loc></url>\n", base, p)
	}
	b.WriteString("</urlset>\n")
	return b.Bytes()
}

// apiPage renders /api/products?page=n (1-based).
func apiPage(n int, usd bool) []byte {
	all := apiCatalog(usd)
	page := struct {
		Products []apiProduct `json:"products"`
		Next     *string      `json:"next"`
	}{Products: all[(n-1)*apiPerPage : n*apiPerPage]}
	if n < apiPages {
		page.Next = ptr(fmt.Sprintf("/api/products?page=%d", n+1))
	}
	b, _ := json.Marshal(page)
	return b
}
