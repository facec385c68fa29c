// Package sitemap reads sitemaps as sitemaps.org defines them, streaming:
// an XML <urlset> or <sitemapindex>, gzipped or not, or a plain-text list
// of URLs, is decoded token by token and each entry handed to a callback
// as soon as it is read, so a 50 MB sitemap never sits in memory.
//
// The sitemaps.org limits are enforced because sitemaps come from sites
// the crawler does not control: at most [MaxEntries] entries and
// [MaxBytes] bytes (uncompressed) per file. Past either, reading stops
// with an error naming the limit ([ErrTooManyEntries], [ErrTooLarge]);
// entries already delivered stay delivered. Uncompressed bytes are what is
// counted, so a gzip bomb costs at most MaxBytes of decompression, and no
// single XML token may exceed [MaxTokenBytes], so memory stays small even
// when a hostile file is one endless text node.
//
// [Walk] follows sitemap indexes (bounded in depth and file count, each
// sitemap read once) and streams the page URLs they list.
package sitemap
