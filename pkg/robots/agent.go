package robots

import "strings"

// ProductToken returns the product token of a User-Agent header value, the
// name robots.txt groups are matched against (RFC 9309 §2.2.1): the leading
// run of [a-zA-Z_-] of the first product, lower-cased.
//
//	ProductToken("shopbot/2.1 (+https://example.com/bot)") == "shopbot"
//	ProductToken("crawlmesh/1 (+https://github.com/crawlmesh/crawlmesh)") == "crawlmesh"
//
// A value "Mozilla/5.0 (compatible; Bot/2.1 ...)" names the bot of its
// "compatible" comment, as Googlebot's does. It returns "" when the value
// does not start with such a character; an empty token selects no
// specific group, only the "*" group.
func ProductToken(userAgent string) string {
	ua := strings.TrimLeft(userAgent, " \t")
	tok := strings.ToLower(leadingToken(ua))
	// "Mozilla/5.0 (compatible; ShopBot/2.1; +https://...)" is how bots
	// that want to look like browsers name themselves (Googlebot does):
	// the bot is the first product of the "compatible" comment.
	if tok == "mozilla" {
		if _, rest, ok := strings.Cut(ua, "(compatible;"); ok {
			if bot := leadingToken(strings.TrimLeft(rest, " \t")); bot != "" {
				return strings.ToLower(bot)
			}
		}
	}
	return tok
}

// ValidProductToken reports whether s is a product token a crawler can
// obey: non-empty and only [a-zA-Z_-] (Google's IsValidUserAgentToObey).
// "Foobot/2.1", "Foobot Bar" and "Foobot*" are not.
func ValidProductToken(s string) bool {
	return s != "" && leadingToken(s) == s
}

// leadingToken is the leading run of [a-zA-Z_-] of s, as Google's
// ExtractUserAgent takes it from a User-agent line: "Googlebot/2.1" and
// "Googlebot Images" in a robots.txt both name googlebot.
func leadingToken(s string) string {
	i := 0
	for i < len(s) && isTokenByte(s[i]) {
		i++
	}
	return s[:i]
}

func isTokenByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || c == '-' || c == '_'
}

// isGlobalAgent reports whether a User-agent value names every crawler:
// "*", or, as Google accepts, "*" followed by whitespace and anything.
func isGlobalAgent(v string) bool {
	return v != "" && v[0] == '*' && (len(v) == 1 || strings.IndexByte(asciiSpace, v[1]) >= 0)
}
