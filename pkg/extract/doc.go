// Package extract is the page-content side of a crawl: given a spider
// spec, it turns a fetched page into items and links to follow, and
// cleans every URL the crawl meets (seeds, sitemap entries, redirect
// targets) the way the spec says. It does no I/O.
//
// [Compile] does all the costly work once per spec version — CSS
// selectors (cascadia), XPath (antchfx/xpath), jq (gojq) and regular
// expressions are compiled there — and the [Rules] it returns are safe for
// concurrent use by every task of a worker.
//
// HTML is parsed once (golang.org/x/net/html) and CSS and XPath run on the
// same tree. JSON responses ([IsJSON]) are decoded with numbers kept as
// their text, so a price of 12.50 stays "12.50".
//
// Meanings follow DESIGN.md ("Settled meanings"); where it is silent:
//   - A css or xpath field that selects nothing is "" (as before the spec
//     fields for real sites); a regex that matches nothing, a JSON null and
//     a jq expression with no output are missing (the key is absent).
//   - all: true always gives a list, empty when nothing matched. Every jq
//     output is one element (DESIGN): ".tags" gives the array's JSON text
//     as one element, ".tags[]" one element per tag. An
//     element lacking the field's attr gives "" alone, and is left out of
//     lists and regex matching.
//   - href and src values are resolved against the page (its <base href>
//     too), strip_query applied and canonicalised like links; a value that
//     is not an http(s) URL (mailto:, data:, javascript:) stays as written.
//   - A jq runtime error (say .a on an array) ends that expression's
//     output, like a CSS selector matching nothing; a page whose jq runs
//     longer than 10 s, or a JSON body that does not parse, is an error.
//   - rel="nofollow" is honoured on any element a follow selector picks.
package extract
