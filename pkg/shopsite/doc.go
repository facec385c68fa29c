// Package shopsite is a small loopback shop built so that only a crawler
// implementing every field of DESIGN.md's "Spec fields for real sites"
// crawls it completely and exactly. [Site.SpecYAML] is the spec that does;
// [Site.Expected] is the exact item set it must export (32 items: 25
// product pages and 7 API products) and [Site.ExpectedPages] the 36 pages
// it fetches, each once. [Site.Violations] lists every forbidden thing
// the site saw and must stay empty; [Site.Requests] is the request log
// (cookie and form field names only, the API key as "ok"/"wrong", and
// the password and key redacted wherever they appear).
//
// Everything is a fixed table (catalog.go), with no randomness but the
// session tokens, so a run is repeatable. Each feature, and why it is
// there:
//
//   - robots.txt: the "*" group disallows /c/, /p/, /members/ and /api/
//     and a decoy "shop" group disallows everything, so a crawler that
//     picks its group by anything but the exact product token (shopbot)
//     gets nothing; the shopbot group disallows /p/secret- (linked from
//     /c/garden and listed in the sitemap) and /cart. It carries the
//     Sitemap: line that is the only way to the sitemap-only products.
//   - User-Agent: a request whose User-Agent does not start with
//     "shopbot/" gets 403 and is a violation; request settings must reach
//     robots.txt, sitemaps, the login and redirect hops too.
//   - API key: /api/ answers 401 without X-Api-Key (a violation), so the
//     spec's request.headers with ${env:SHOP_KEY} must be expanded.
//   - Login: POST /login with the user and password form fields sets the
//     session cookie (and answers 303 to /account). A session serves
//     Options.SessionPages pages (5); then /c/ and /p/ answer 401 and
//     /members/ redirects to exactly /login, so both relogin triggers
//     (relogin_on: [401], and a redirect to the login URL) are needed.
//     Redirect hops check the session without using it, since only the
//     first answer of a fetch triggers a relogin.
//   - Currency: without the currency=EUR cookie (request.cookies) prices
//     are in USD, which makes every price wrong (and is a violation).
//   - Cart links /cart?add=N on every product page and a quick-add link
//     /p/8?ref=home&add=8, which passes links.allow and robots.txt, so
//     only links.deny stops it.
//   - rel="nofollow" and rel="noopener nofollow" links to /p/clearance and
//     /p/clearance-2, which pass every other filter.
//   - Tracking parameters: /p/3 is linked as ?utm_source=x&utm_medium=y,
//     ?sid=123 and from the sitemap as ?utm_source=sitemap; /p/4 and /p/9
//     only with them. strip_query must collapse each to one request of
//     the bare URL; a request still carrying utm_* or sid is a violation.
//   - links.follow: only "nav a" and "main a"; the footer links the
//     archive (/c/archive, /p/50), which must never be requested.
//   - links.allow: the nav links /blog/welcome, outside it; sitemap files
//     are outside it too and must still be read.
//   - Product pages need every field kind: css text (h1, with an entity
//     and with non-ASCII), xpath text (.//span[@class='sku']), xpath
//     attribute (gtin13 @content), attr as written (data-brand), regex
//     with a group (price "12.50" from "Price: 12.50 EUR") and without
//     (currency), a regex that matches only on sale items ("was", a
//     missing value, so an absent key, elsewhere), all: true (tags), an
//     absolute src from "../img/pN.jpg". /p/23 has no <h1> and /p/24 a
//     blank one: required: title makes neither an item. Every selector
//     matches on every product: what a css or xpath field selecting
//     nothing gives is not settled by DESIGN.md, so the shop avoids it.
//   - Teasers: the home and category pages carry a div.product that looks
//     like a product; the item rule's url: "/p/" keeps it out.
//   - Sitemaps: robots.txt → /sitemap_index.xml → a gzipped
//     /sitemaps/products.xml.gz (served as application/gzip, no
//     Content-Encoding, with xmlns and image:loc extensions) listing
//     /p/19-22, found nowhere else, plus a duplicate, a tracking variant, a
//     robots-disallowed page, a cart URL and a localhost URL (outside
//     allowed_domains); /sitemaps/pages.xml lists pages also linked, so
//     seeds must be de-duplicated against links.
//   - JSON API: /api/products?page=1..3 returns {"products": [...],
//     "next": "/api/products?page=N+1"} and null at the end (links.json);
//     products become items through json: rules with numbers, booleans,
//     a list, an object, a fraction, a null discount (a missing value)
//     and a null and an empty name (not items). Page 3 is served as
//     application/vnd.shop+json.
//   - Redirects: /p/old-5 → /p/5 (301) and /p/legacy-6 → /p/old-6 → /p/6
//     (302 then 301); items carry the final URL. The targets are linked
//     nowhere else, so a correct crawl fetches each once.
//   - Politeness: more page requests at once than Options.Parallelism
//     (the spec's politeness.parallelism, 1) is a violation; a page
//     answered 200 twice is a violation.
package shopsite
