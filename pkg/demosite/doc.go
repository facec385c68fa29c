// Package demosite is the small bookshop that `crawlmesh up --demo` serves
// and crawls, so a new user sees a whole crawl (following, extraction,
// robots.txt) without touching anyone else's site.
//
// Everything is derived from the book id, with no randomness, so [Expected]
// can state exactly what a correct crawl of [Spec] must produce and the demo
// doubles as an end-to-end check.
package demosite
