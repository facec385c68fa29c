// Package robots decides which URLs of a host a crawler may fetch, by
// reading its robots.txt as RFC 9309 says and as Google's reference parser
// (github.com/google/robotstxt, robots.cc) does, case for case.
//
// [Parse] reads a body and never fails: a line it cannot read is skipped and
// the rest of the file still counts, so "Crawl-delay: soon" or a rule before
// the first User-agent line cannot void the file. [Robots.Allowed] and
// [Robots.AllowedURL] answer for one product token (see [ProductToken]),
// [Robots.CrawlDelay] and [Robots.Sitemaps] give the other lines a crawler
// uses. [ForStatus] turns an HTTP answer into rules, [Unreachable] stands in
// for no answer. A [Robots] is immutable and safe for concurrent use.
//
// # Parsing, as robots.cc does
//
//   - A UTF-8 byte order mark, or any prefix of one, at the start is skipped.
//     Lines end at CR, LF or CRLF. A '#' starts a comment. Keys are matched
//     ignoring case and by prefix, with the typos Google accepts: useragent,
//     user agent; dissallow, dissalow, disalow, diasllow, disallaw; site-map;
//     and, for the Crawl-delay this package adds, crawldelay, crawl delay.
//   - "key value" without a colon is read as "key: value" when the line has
//     exactly two words ("disallow /").
//   - A line longer than 16663 bytes (2083*8 with Google's NUL) is cut there
//     and the kept part is read. A NUL byte ends its line.
//   - Consecutive User-agent lines form a group with the lines that follow;
//     only an Allow or Disallow line ends the run of User-agent lines, so a
//     Sitemap, Crawl-delay or unknown line between two of them does not.
//     Groups naming the same agent are merged. Sitemap lines belong to no
//     group. Allow and Disallow lines before any User-agent line are ignored.
//   - A User-agent value names the leading run of [a-zA-Z_-] of it:
//     "Googlebot/2.1" and "Googlebot Images" both name googlebot. "*", or
//     "*" followed by whitespace and anything, names every crawler.
//   - Allow and Disallow values have octets outside US-ASCII percent-encoded
//     and escape hex digits upper-cased; nothing else is decoded or encoded.
//     An empty value matches nothing (an empty Disallow allows everything).
//   - Google-specific: "Allow: /dir/index.html" (any last segment starting
//     with index.htm) also allows "/dir/" itself.
//
// The body is read up to [MaxSize] (500 KiB, RFC 9309 §2.5). Unlike Google,
// a line cut by that limit is dropped rather than read shortened.
//
// # Matching
//
// The groups naming the product token decide; if none does, the "*" groups;
// if none, everything is allowed. The longest matching pattern wins and
// Allow wins a tie; see [Robots.Allowed].
//
// # HTTP status of robots.txt (RFC 9309 §2.3.1)
//
//   - 2xx: the body is parsed ([KindParsed]).
//   - 3xx: the caller follows redirects, at least five hops. A 3xx that
//     reaches [ForStatus] (too many hops, no Location) means unavailable.
//   - 4xx, 401 and 403 included: "unavailable", there are no rules for us,
//     everything is allowed ([AllowAll], [KindUnavailable]). Access control
//     on robots.txt is not a disallow (RFC 9309 §2.3.1.3).
//   - 429: treated as a server error, as Google does, though RFC 9309 counts
//     it as unavailable: a host asking us to slow down is not inviting a
//     crawl of everything.
//   - 5xx, any other status, and no answer at all ([Unreachable]):
//     "unreachable", everything is disallowed ([KindUnreachable]). The
//     caller caches this for a short while and asks again; RFC 9309 lets it
//     keep using an older copy, or after a long outage (30 days) treat the
//     file as unavailable.
//
// # Deviations from robots.cc
//
//   - Google matches an empty agent name against a User-agent line with no
//     [a-zA-Z_-] prefix ("User-agent: 007"); here such a line names nobody.
//   - Crawl-delay is read here (Google ignores it); see [Robots.CrawlDelay].
//   - The 500 KiB limit, and dropping the line it cuts, are the crawler's
//     (Google's crawler applies that limit, its library does not).
package robots
