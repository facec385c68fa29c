// Package urlnorm resolves links against the page they were found on and
// puts URLs in the canonical form crawlmesh de-duplicates on: lower-case
// scheme and host, default port dropped, fragment dropped, escapes of
// unreserved characters decoded and the others in upper case, dot
// segments removed, empty path as "/". Only http and https URLs are
// accepted.
package urlnorm

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"unicode/utf8"

	"golang.org/x/net/idna"
)

// ErrScheme is wrapped when a URL is not http or https.
var ErrScheme = errors.New("urlnorm: only http and https URLs are crawled")

// Canonical returns the canonical form of an absolute URL.
func Canonical(raw string) (string, error) {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil {
		return "", fmt.Errorf("urlnorm: %w", err)
	}
	return canonicalURL(u)
}

// Resolve resolves href (relative, query-only, protocol-relative or
// absolute) against base and returns its canonical form.
func Resolve(base *url.URL, href string) (string, error) {
	href = strings.TrimSpace(href)
	ref, err := url.Parse(href)
	if err != nil {
		return "", fmt.Errorf("urlnorm: %w", err)
	}
	return canonicalURL(base.ResolveReference(ref))
}

func canonicalURL(u *url.URL) (string, error) {
	c := *u
	c.Scheme = strings.ToLower(c.Scheme)
	if c.Scheme != "http" && c.Scheme != "https" {
		return "", fmt.Errorf("%w: %q", ErrScheme, u.String())
	}
	if c.Opaque != "" {
		return "", fmt.Errorf("urlnorm: opaque URL %q", u.String())
	}
	host, port := c.Hostname(), c.Port()
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	host = ASCIIHost(host)
	if !validHost(host) {
		return "", fmt.Errorf("urlnorm: bad or missing host in %q", u.String())
	}
	if (c.Scheme == "http" && port == "80") || (c.Scheme == "https" && port == "443") {
		port = ""
	}
	if port != "" {
		c.Host = net.JoinHostPort(host, port)
	} else if strings.Contains(host, ":") {
		c.Host = "[" + host + "]"
	} else {
		c.Host = host
	}
	c.User = nil
	c.Fragment, c.RawFragment = "", ""
	p := removeDotSegments(NormalizeEscapes(c.EscapedPath()))
	if p == "" {
		p = "/"
	}
	dec, err := url.PathUnescape(p)
	if err != nil {
		return "", fmt.Errorf("urlnorm: path of %q: %w", u.String(), err)
	}
	c.Path, c.RawPath = dec, p
	c.RawQuery = escapeQuery(c.RawQuery)
	if c.ForceQuery && c.RawQuery == "" {
		c.ForceQuery = false
	}
	return c.String(), nil
}

// escapeQuery percent-encodes what a query may not hold raw (RFC 3986
// 3.4): spaces, controls, non-ASCII, brackets and the like, and a '%' that
// starts no escape. url.Parse keeps them as they came, so without this a
// query ending in a space would lose it when the canonical form is parsed
// again (Canonical trims), and the seen-set would hold two keys for one
// page. Valid escapes are normalised as in a path (NormalizeEscapes).
func escapeQuery(q string) string { return rewriteEscapes(q, queryChar) }

// NormalizeEscapes applies RFC 3986 6.2.2.1 and 6.2.2.2 to an escaped
// path: an escape of an unreserved character is that character ("%7E" is
// "~", "%41" is "A", "%2E" is "." so dot segments are found after it),
// and other escapes have upper-case digits ("%2a" is "%2A"). Without it
// one page linked in two spellings was two seen-set keys and two fetches.
// Any other byte is kept as it is.
func NormalizeEscapes(s string) string {
	if strings.IndexByte(s, '%') < 0 {
		return s
	}
	return rewriteEscapes(s, func(byte) bool { return true })
}

// rewriteEscapes writes s with each valid escape in normal form, each
// byte raw keeps as it is, and every other byte escaped.
func rewriteEscapes(s string, raw func(byte) bool) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch ch := s[i]; {
		case ch == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]):
			if d := unhex(s[i+1])<<4 | unhex(s[i+2]); unreserved(d) {
				b.WriteByte(d)
			} else {
				writePct(&b, d)
			}
			i += 2
		case raw(ch):
			b.WriteByte(ch)
		default:
			writePct(&b, ch)
		}
	}
	return b.String()
}

// writePct writes c as an escape with upper-case digits.
func writePct(b *strings.Builder, c byte) {
	const hex = "0123456789ABCDEF"
	b.WriteByte('%')
	b.WriteByte(hex[c>>4])
	b.WriteByte(hex[c&15])
}

func unhex(c byte) byte {
	switch {
	case c >= '0' && c <= '9':
		return c - '0'
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10
	}
	return c - 'A' + 10
}

// unreserved: ALPHA, DIGIT, '-', '.', '_', '~' (RFC 3986 2.3).
func unreserved(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	return c == '-' || c == '.' || c == '_' || c == '~'
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

// queryChar: unreserved, sub-delims, ':', '@', '/' and '?'.
func queryChar(c byte) bool { return unreserved(c) || strings.IndexByte("!$&'()*+,;=:@/?", c) >= 0 }

// removeDotSegments is RFC 3986 section 5.2.4.
func removeDotSegments(in string) string {
	var out []string
	segs := strings.Split(in, "/")
	for i, s := range segs {
		switch s {
		case ".":
			if i == len(segs)-1 {
				out = append(out, "")
			}
		case "..":
			if len(out) > 1 {
				out = out[:len(out)-1]
			}
			if i == len(segs)-1 {
				out = append(out, "")
			}
		default:
			out = append(out, s)
		}
	}
	r := strings.Join(out, "/")
	if strings.HasPrefix(in, "/") && !strings.HasPrefix(r, "/") {
		r = "/" + r
	}
	return r
}

// Decoded is canonical URL c percent-decoded, or "" when that is c
// itself. A canonical URL is percent-encoded, but users write patterns as
// they read URLs ("/bücher/", "/sp ace"): link rules, item rules and the
// start URL checks try each pattern on both, so either spelling matches.
func Decoded(c string) string {
	if strings.IndexByte(c, '%') >= 0 {
		if d, err := url.PathUnescape(c); err == nil && d != c {
			return d
		}
	}
	return ""
}

// validHost accepts an IP address or dot-separated non-empty labels of
// letters, digits, '-' and '_'.
// ASCIIHost is host with internationalised labels in their ASCII
// (punycode) form, as DNS and HTTP carry them (bücher.example →
// xn--bcher-kva.example); a host that is ASCII already, or that IDNA
// refuses, is returned as it is (and then found bad by whoever checks).
func ASCIIHost(host string) string {
	for i := 0; i < len(host); i++ {
		if host[i] >= utf8.RuneSelf {
			if a, err := idna.Lookup.ToASCII(host); err == nil {
				return a
			}
			return host
		}
	}
	return host
}

func validHost(h string) bool {
	if h == "" {
		return false
	}
	if net.ParseIP(h) != nil {
		return true
	}
	for _, l := range strings.Split(h, ".") {
		if l == "" || len(l) > 63 {
			return false
		}
		for _, r := range l {
			if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
				return false
			}
		}
	}
	return true
}
