package robots_test

import (
	"fmt"
	"net/url"

	"github.com/crawlmesh/crawlmesh/pkg/robots"
)

func Example() {
	body := []byte(`# A typical file, with mistakes that void nothing.
Disallow: /ignored-before-any-user-agent
Sitemap: https://shop.example/sitemap.xml

User-agent: *
Disallow: /cart
Crawl-delay: soon

User-agent: Shopbot/2.1
Allow: /cart/public
Disallow: /cart
Disallow: /*.pdf$
Crawl-delay: 1.5
`)
	r := robots.ForStatus(200, body)
	token := robots.ProductToken("shopbot/2.1 (+https://example.com/bot)")
	for _, p := range []string{"/cart/x", "/cart/public/y", "/manual.pdf", "/manual.pdf?v=2", "/ignored-before-any-user-agent"} {
		fmt.Println(p, r.Allowed(token, p))
	}
	u, _ := url.Parse("https://shop.example/cart/ツ")
	fmt.Println(u.Path, r.AllowedURL("otherbot", u))
	fmt.Println(token, r.CrawlDelay(token), r.Sitemaps())
	fmt.Println(robots.ForStatus(503, nil).Kind(), robots.ForStatus(403, nil).Allowed(token, "/cart"))
	// Output:
	// /cart/x false
	// /cart/public/y true
	// /manual.pdf false
	// /manual.pdf?v=2 true
	// /ignored-before-any-user-agent true
	// /cart/ツ false
	// shopbot 1.5s [https://shop.example/sitemap.xml]
	// unreachable true
}
