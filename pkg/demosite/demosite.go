package demosite

import (
	"bytes"
	"fmt"
	"html"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

const (
	// Books is the number of books in the shop, ids 1..Books.
	Books = 500
	// PerPage is the number of books on each catalogue page.
	PerPage = 20
	// CataloguePages is the number of catalogue pages, page-1..page-N.
	CataloguePages = Books / PerPage
)

const robotsTxt = "User-agent: *\nDisallow: /admin/\n"

// Handler serves the bookshop. It holds no state, so one handler may serve
// any number of concurrent crawls.
func Handler() http.Handler {
	return http.HandlerFunc(serve)
}

func serve(w http.ResponseWriter, r *http.Request) {
	p := r.URL.Path
	switch {
	case p == "/robots.txt":
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte(robotsTxt))
	case p == "/":
		writeHTML(w, indexPage())
	case p == "/admin/stats.html":
		// Exists on purpose: only robots.txt keeps a crawler out of it.
		writeHTML(w, adminPage())
	case strings.HasPrefix(p, "/catalogue/"):
		n, ok := number(p, "/catalogue/page-", ".html", CataloguePages)
		if !ok {
			http.NotFound(w, r)
			return
		}
		writeHTML(w, cataloguePage(n))
	case strings.HasPrefix(p, "/book/"):
		id, ok := number(p, "/book/", ".html", Books)
		if !ok {
			http.NotFound(w, r)
			return
		}
		writeHTML(w, bookPage(id))
	default:
		http.NotFound(w, r)
	}
}

// number extracts N from prefix+N+suffix, accepting only the canonical
// spelling of 1..max so that each page has exactly one URL and a crawl's
// page count is exact.
func number(path, prefix, suffix string, max int) (int, bool) {
	s, ok := strings.CutPrefix(path, prefix)
	if !ok {
		return 0, false
	}
	s, ok = strings.CutSuffix(s, suffix)
	if !ok {
		return 0, false
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > max || strconv.Itoa(n) != s {
		return 0, false
	}
	return n, true
}

func writeHTML(w http.ResponseWriter, body []byte) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	_, _ = w.Write(body)
}

var (
	adjectives = []string{"Silent", "Crimson", "Hidden", "Last", "Broken", "Golden", "Distant", "Wandering", "Secret", "Frozen", "Little", "Endless", "Midnight", "Paper", "Restless", "Quiet", "Burning"}
	nouns      = []string{"Garden", "River", "Lighthouse", "Orchard", "Library", "Harbour", "Kingdom", "Compass", "Winter", "Atlas", "Clockmaker", "Island", "Mirror"}
)

// Title is the full title of book id. It is unique per id (the topic
// number is the id) yet readable, and long enough that the catalogue has to
// shorten it, which is why the spec takes the title attribute.
func Title(id int) string {
	a := adjectives[id%len(adjectives)]
	n := nouns[(id/len(adjectives))%len(nouns)]
	return fmt.Sprintf("The %s %s: The Book of Topic %d", a, n, id)
}

// shortTitle is what the catalogue shows in the link text.
func shortTitle(t string) string {
	const max = 20
	r := []rune(t)
	if len(r) <= max {
		return t
	}
	return strings.TrimSpace(string(r[:max])) + "…"
}

// Price is the price of book id as shown on the site, e.g. "£12.34".
func Price(id int) string {
	return fmt.Sprintf("£%d.%02d", 5+(id*37)%50, (id*53)%100)
}

// Stock is the stock line of book id, e.g. "In stock (7 available)".
func Stock(id int) string {
	return fmt.Sprintf("In stock (%d available)", 1+(id*13)%22)
}

// CataloguePage is the catalogue page listing book id.
func CataloguePage(id int) int { return (id-1)/PerPage + 1 }

func head(b *bytes.Buffer, title string) {
	fmt.Fprintf(b, "<!DOCTYPE html>\n<html lang=\"en\">\n<head><meta charset=\"utf-8\"><title>%s | Crawlmesh Books</title></head>\n<body>\n", html.EscapeString(title))
}

func foot(b *bytes.Buffer) {
	b.WriteString("</body>\n</html>\n")
}

func indexPage() []byte {
	var b bytes.Buffer
	head(&b, "Home")
	b.WriteString("<h1>Crawlmesh Books</h1>\n")
	b.WriteString("<p>A demo bookshop for crawlmesh.</p>\n")
	b.WriteString("<p><a href=\"/catalogue/page-1.html\">Browse the catalogue</a></p>\n")
	// In an h3 so the demo spec's "h3 a" rule picks it up: robots.txt,
	// not the spec, is what must keep the crawler out.
	b.WriteString("<h3><a href=\"/admin/stats.html\">Shop statistics</a></h3>\n")
	foot(&b)
	return b.Bytes()
}

func adminPage() []byte {
	var b bytes.Buffer
	head(&b, "Statistics")
	fmt.Fprintf(&b, "<h1>Statistics</h1>\n<p>%d books on %d pages.</p>\n", Books, CataloguePages)
	foot(&b)
	return b.Bytes()
}

func cataloguePage(n int) []byte {
	var b bytes.Buffer
	head(&b, fmt.Sprintf("Catalogue page %d", n))
	fmt.Fprintf(&b, "<h1>Catalogue</h1>\n<p>Page %d of %d</p>\n<section>\n", n, CataloguePages)
	for id := (n-1)*PerPage + 1; id <= n*PerPage; id++ {
		t := Title(id)
		fmt.Fprintf(&b, "<article class=\"product\"><h3><a href=\"/book/%d.html\" title=\"%s\">%s</a></h3><p class=\"price\">%s</p></article>\n",
			id, html.EscapeString(t), html.EscapeString(shortTitle(t)), Price(id))
	}
	b.WriteString("</section>\n<ul class=\"pager\">")
	// Relative links on purpose: the crawler must resolve them.
	if n > 1 {
		fmt.Fprintf(&b, "<li class=\"previous\"><a href=\"page-%d.html\">previous</a></li>", n-1)
	}
	if n < CataloguePages {
		fmt.Fprintf(&b, "<li class=\"next\"><a href=\"page-%d.html\">next</a></li>", n+1)
	}
	b.WriteString("</ul>\n")
	foot(&b)
	return b.Bytes()
}

func bookPage(id int) []byte {
	var b bytes.Buffer
	t := html.EscapeString(Title(id))
	head(&b, Title(id))
	fmt.Fprintf(&b, "<div class=\"book\"><h1>%s</h1><p class=\"price\">%s</p><p class=\"stock\">%s</p><a href=\"/catalogue/page-%d.html\">back</a></div>\n",
		t, Price(id), Stock(id), CataloguePage(id))
	foot(&b)
	return b.Bytes()
}

// Spec returns the demo spider for the site served at base (e.g.
// "http://127.0.0.1:8088"): it walks the catalogue and yields one item per
// catalogue entry and one per book page.
func Spec(base string) string {
	base = strings.TrimRight(base, "/")
	host := base
	if u, err := url.Parse(base); err == nil && u.Host != "" {
		host = u.Host
	}
	q := strconv.Quote
	return `name: books
start_urls:
  - ` + q(base+"/") + `
allowed_domains:
  - ` + q(host) + `
max_depth: 0
follow:
  - "a[href*='catalogue/']"
  - "ul.pager a"
  - "h3 a"
items:
  - selector: "article.product"
    fields:
      title: {css: "h3 a", attr: "title"}
      price: {css: ".price"}
      url: {css: "h3 a", attr: "href"}
  - selector: "div.book"
    fields:
      title: {css: "h1"}
      price: {css: ".price"}
      stock: {css: ".stock"}
politeness:
  delay: 0s
  parallelism: 8
  robots_txt: true
`
}

// Expected returns what a correct crawl of [Spec] yields: pages fetched
// successfully (the index, every catalogue page and every book page, but
// never /admin/, which robots.txt forbids) and items extracted (one per
// catalogue entry plus one per book page).
func Expected() (pages int, items int) {
	return 1 + CataloguePages + Books, Books + Books
}
