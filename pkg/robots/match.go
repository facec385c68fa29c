package robots

import (
	"net/url"
	"strings"
)

// Allowed reports whether the crawler named productToken may fetch path.
//
// productToken is a product token such as [ProductToken] returns ("shopbot");
// it is compared with each User-agent line's token ignoring ASCII case, and
// not shortened itself, so "Foo Bar" matches no group. path is the URL's
// path and query, percent-encoded as it goes on the wire ("/a/b?c=d"); ""
// means "/". Allowed does not re-encode it: "/ツ" does not match a rule for
// "/%E3%83%84". [Robots.AllowedURL] encodes it first.
//
// The groups that name productToken decide, merged; if none does, the "*"
// groups do, merged; if there is none of those either, everything is
// allowed. Among their rules the one with the longest pattern that matches
// wins, and Allow wins a tie (RFC 9309 §2.2.2). A pattern matches from the
// first octet of path; '*' matches any run of octets and a final '$'
// anchors the pattern at the end of path.
func (r *Robots) Allowed(productToken, path string) bool { return r.allowed(productToken, path, false) }

// AllowedNormalized is [Robots.Allowed] for a path whose escapes of
// unreserved characters are decoded (crawlmesh's canonical URLs): rules
// are compared with theirs decoded too, as RFC 9309 §2.2.2 says, so
// "Disallow: /%7Ejoe" keeps the crawler out of "/~joe" (found by review).
// Allowed compares rules as written, as Google's parser does.
func (r *Robots) AllowedNormalized(productToken, path string) bool {
	return r.allowed(productToken, path, true)
}

func (r *Robots) allowed(productToken, path string, decoded bool) bool {
	switch r.kind {
	case KindUnavailable:
		return true
	case KindUnreachable:
		return false
	}
	if path == "" || path[0] != '/' {
		path = "/" + path
	}
	specific := r.hasGroupFor(productToken)
	allow, disallow := 0, 0
	for i := range r.groups {
		g := &r.groups[i]
		if specific && !g.names(productToken) || !specific && !g.global {
			continue
		}
		for j := range g.rules {
			ru := &g.rules[j]
			if decoded && ru.decoded != nil {
				ru = ru.decoded
			}
			if ru.allow {
				if ru.prio > allow && ru.match(path) {
					allow = ru.prio
				}
			} else if ru.prio > disallow && ru.match(path) {
				disallow = ru.prio
			}
		}
	}
	return disallow <= allow
}

// AllowedURL is [Robots.Allowed] for u's path and query. Octets outside
// US-ASCII are percent-encoded and the hex digits of escapes upper-cased
// first, as rule patterns are (RFC 9309 §2.2.2), so "/ツ" and "/%e3%83%84"
// both match a rule for "/ツ". The scheme, host and fragment are ignored.
func (r *Robots) AllowedURL(productToken string, u *url.URL) bool {
	return r.Allowed(productToken, requestPath(u))
}

// AllowedNormalizedURL is [Robots.AllowedURL] for a canonical URL (see
// [Robots.AllowedNormalized]).
func (r *Robots) AllowedNormalizedURL(productToken string, u *url.URL) bool {
	return r.AllowedNormalized(productToken, requestPath(u))
}

// requestPath is u's escaped path and query, starting with "/".
func requestPath(u *url.URL) string {
	p := u.EscapedPath()
	if u.RawQuery != "" || u.ForceQuery {
		p += "?" + u.RawQuery
	}
	if p == "" || p[0] != '/' {
		p = "/" + p
	}
	return escapePattern(p)
}

// hasGroupFor reports whether a group names productToken. If one does, the
// "*" groups no longer apply, even where it has no rule for a path.
func (r *Robots) hasGroupFor(productToken string) bool {
	if productToken == "" {
		return false
	}
	for i := range r.groups {
		if r.groups[i].names(productToken) {
			return true
		}
	}
	return false
}

// names reports whether one of g's User-agent lines names productToken.
func (g *group) names(productToken string) bool {
	for i := range g.agents {
		if a := g.agents[i].token; a != "*" && equalFold(a, productToken) {
			return true
		}
	}
	return false
}

// match reports whether the rule's pattern matches path from its first
// octet. It gives the same answers as Google's RobotsMatchStrategy::Matches
// (FuzzMatch checks this against a port of it), in time linear in
// len(path) for each '*' of the pattern rather than Google's
// len(path)*len(pattern).
//
// Between two '*' a segment must occur; placing each at its leftmost
// occurrence leaves the most room for the rest, so that is the only
// placement to try. The last segment must end the path if the pattern is
// anchored, and may stand anywhere after the others if not.
func (ru *rule) match(path string) bool {
	if ru.segs == nil {
		if ru.anchored {
			return path == ru.lit
		}
		return strings.HasPrefix(path, ru.lit)
	}
	first, last := ru.segs[0], ru.segs[len(ru.segs)-1]
	if !strings.HasPrefix(path, first) {
		return false
	}
	s := len(first)
	for _, seg := range ru.segs[1 : len(ru.segs)-1] {
		i := strings.Index(path[s:], seg)
		if i < 0 {
			return false
		}
		s += i + len(seg)
	}
	if ru.anchored {
		return len(path)-s >= len(last) && strings.HasSuffix(path, last)
	}
	return strings.Contains(path[s:], last)
}
