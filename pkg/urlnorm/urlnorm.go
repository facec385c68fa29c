// Package urlnorm resolves links against the page they were found on and
// puts URLs in the canonical form crawlmesh de-duplicates on: lower-case
// scheme and host, default port dropped, fragment dropped, dot segments
// removed, empty path as "/". Only http and https URLs are accepted.
package urlnorm

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
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
	p := removeDotSegments(c.EscapedPath())
	if p == "" {
		p = "/"
	}
	dec, err := url.PathUnescape(p)
	if err != nil {
		return "", fmt.Errorf("urlnorm: path of %q: %w", u.String(), err)
	}
	c.Path, c.RawPath = dec, p
	if c.ForceQuery && c.RawQuery == "" {
		c.ForceQuery = false
	}
	return c.String(), nil
}

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

// validHost accepts an IP address or dot-separated non-empty labels of
// letters, digits, '-' and '_'.
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
