package shopsite

import (
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// ExpectedItem is one item of a crawl's results: its URL (the page's
// final, canonical URL) and its data, each value a string or a []string.
// A missing value is an absent key.
type ExpectedItem struct {
	URL  string         `json:"url"`
	Data map[string]any `json:"data"`
}

// resolveBase is baseURL, or the started site's, without a trailing slash.
func (s *Site) resolveBase(baseURL string) string {
	if baseURL == "" {
		baseURL = s.URL()
	}
	return strings.TrimRight(baseURL, "/")
}

// SpecYAML returns the spider spec that crawls the shop at baseURL (""
// means the URL Start returned) completely and exactly, in the field
// names of DESIGN.md. Its secrets are ${env:...} references: run the
// workers with [Site.Env].
func (s *Site) SpecYAML(baseURL string) string {
	base := s.resolveBase(baseURL)
	host := base
	if u, err := url.Parse(base); err == nil && u.Host != "" {
		host = u.Host
	}
	q := strconv.Quote
	return `name: shop
start_urls:
  - ` + q(base+"/") + `
allowed_domains:
  - ` + q(host) + `
max_depth: 0
max_pages: 0
sitemaps: ["robots"]
request:
  user_agent: ` + q(UserAgent) + `
  headers: {X-Api-Key: "${env:` + EnvKey + `}"}
  cookies: {currency: "EUR"}
  timeout: 10s
login:
  url: ` + q(base+"/login") + `
  form: {user: ` + q(s.opts.User) + `, password: "${env:` + EnvPassword + `}"}
  relogin_on: [401]
links:
  follow: ["nav a", "main a"]
  json: [".next"]
  allow: ["/$", "/c/", "/p/", "/members/", "/api/products"]
  deny: ["/cart", "[?&]add="]
  strip_query: ["utm_*", "sid"]
  nofollow: true
items:
  - selector: "div.product"
    url: "/p/"
    fields:
      title: {css: "h1"}
      sku: {xpath: ".//span[@class='sku']"}
      gtin: {xpath: ".//meta[@itemprop='gtin13']/@content"}
      brand: {css: ".brand", attr: "data-brand"}
      price: {css: ".price", regex: "Price: ([0-9]+\\.[0-9]{2})"}
      currency: {css: ".price", regex: "[A-Z]{3}"}
      was: {css: ".price", regex: "was ([0-9]+\\.[0-9]{2})"}
      tags: {css: ".tag", all: true}
      image: {css: "img.main", attr: "src"}
    required: ["title"]
  - json: ".products[]"
    url: "/api/products"
    fields:
      title: {json: ".name"}
      sku: {json: ".sku"}
      price_cents: {json: ".price_cents"}
      currency: {json: ".currency"}
      in_stock: {json: ".in_stock"}
      tags: {json: ".tags[]", all: true}
      discount: {json: ".discount"}
      dims: {json: ".dims"}
      rating: {json: ".rating"}
    required: ["title"]
politeness:
  delay: 0s
  parallelism: ` + strconv.Itoa(s.opts.Parallelism) + `
  robots_txt: true
`
}

// Expected returns the items a correct crawl of [Site.SpecYAML] exports
// for the shop at baseURL ("" means the URL Start returned), sorted by
// URL, then by data.
func (s *Site) Expected(baseURL string) []ExpectedItem {
	base := s.resolveBase(baseURL)
	var out []ExpectedItem
	add := func(dir string, id int) {
		p := products[id]
		d := map[string]any{
			"title":    p.title,
			"sku":      sku(id),
			"gtin":     gtin(id),
			"brand":    p.brand,
			"price":    money(eurCents(id)),
			"currency": "EUR",
			"tags":     slices.Clone(p.tags),
			// src="../img/pN.jpg" from DIR/p/N is DIR/img/pN.jpg.
			"image": fmt.Sprintf("%s%s/img/p%d.jpg", base, dir, id),
		}
		if onSale(id) {
			d["was"] = money(wasCents(eurCents(id)))
		}
		out = append(out, ExpectedItem{URL: fmt.Sprintf("%s%s/p/%d", base, dir, id), Data: d})
	}
	for _, id := range itemIDs() {
		add("", id)
	}
	for _, id := range memberIDs {
		add("/members", id)
	}
	for i, p := range apiCatalog(false) {
		if p.Name == nil || *p.Name == "" {
			continue // required title: null and "" are not items
		}
		dims, _ := json.Marshal(p.Dims)
		d := map[string]any{
			"title":       *p.Name,
			"sku":         p.SKU,
			"price_cents": strconv.Itoa(p.PriceCents),
			"currency":    p.Currency,
			"in_stock":    strconv.FormatBool(p.InStock),
			"tags":        slices.Clone(p.Tags),
			"dims":        string(dims),
			"rating":      strconv.FormatFloat(p.Rating, 'f', -1, 64),
		}
		if p.Discount != nil {
			d["discount"] = strconv.Itoa(*p.Discount)
		}
		out = append(out, ExpectedItem{URL: fmt.Sprintf("%s/api/products?page=%d", base, i/apiPerPage+1), Data: d})
	}
	sort.SliceStable(out, func(i, j int) bool { return itemKey(out[i]) < itemKey(out[j]) })
	return out
}

// ExpectedPages returns the URLs a correct crawl fetches successfully
// (2xx), each exactly once: the pages and API pages, not robots.txt,
// sitemaps, the login, redirect hops or answers saying the session
// expired.
func (s *Site) ExpectedPages(baseURL string) []string {
	base := s.resolveBase(baseURL)
	var out []string
	for uri := range lists {
		if uri != "/c/archive" {
			out = append(out, base+uri)
		}
	}
	out = append(out, base+"/")
	for _, sec := range [][]int{toolsPage1, toolsPage2, garden, kitchen, sitemapOnly} {
		for _, id := range sec {
			out = append(out, fmt.Sprintf("%s/p/%d", base, id))
		}
	}
	for _, id := range memberIDs {
		out = append(out, fmt.Sprintf("%s/members/p/%d", base, id))
	}
	for n := 1; n <= apiPages; n++ {
		out = append(out, fmt.Sprintf("%s/api/products?page=%d", base, n))
	}
	slices.Sort(out)
	return out
}

// itemKey is an item's URL and data as canonical JSON: a null value and
// an absent key are the same, []any and []string alike.
func itemKey(it ExpectedItem) string {
	d := map[string]any{}
	for k, v := range it.Data {
		if v != nil {
			d[k] = v
		}
	}
	b, err := json.Marshal(d)
	if err != nil {
		b = []byte(fmt.Sprintf("%#v", it.Data))
	}
	return it.URL + " " + string(b)
}

// Diff compares a crawl's items with the expected ones as multisets and
// describes each difference; it returns nil when they are the same. Items
// decoded from `results export` (data values string or []any) compare
// equal to the expected ones.
func Diff(want, got []ExpectedItem) []string {
	count := map[string]int{}
	for _, it := range want {
		count[itemKey(it)]++
	}
	for _, it := range got {
		count[itemKey(it)]--
	}
	var out []string
	for k, n := range count {
		switch {
		case n > 0:
			out = append(out, fmt.Sprintf("missing (%d): %s", n, k))
		case n < 0:
			out = append(out, fmt.Sprintf("unexpected (%d): %s", -n, k))
		}
	}
	slices.Sort(out)
	return out
}
