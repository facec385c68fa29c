package extract

import (
	"net/url"
	"path"
	"strconv"
	"strings"

	"github.com/crawlmesh/crawlmesh/pkg/spec"
	"github.com/crawlmesh/crawlmesh/pkg/urlnorm"
)

// Link resolves href against base (nil: href must be absolute), drops the
// strip_query parameters, canonicalises, and checks allowed_domains and
// allow/deny: what every URL of a crawl goes through, links on pages,
// seeds, sitemap entries and redirect targets alike. ok is false for a URL
// the crawl must not request (or one that is not http(s)).
func (r *Rules) Link(base *url.URL, href string) (canonical string, ok bool) {
	c, err := r.canonical(base, href)
	if err != nil || !r.allowed(c) {
		return "", false
	}
	return c, true
}

// StartURL is the URL a crawl names a start URL or a seeds file's line by,
// as it names links: canonical, with strip_query applied (and not checked
// against the link rules: start URLs are the user's own).
func (r *Rules) StartURL(raw string) (string, error) { return r.canonical(nil, raw) }

// canonical is Link without the checks: the URL as the crawl names it.
//
// strip_query is applied to the canonical form's query. That is the same
// as stripping before canonicalisation (canonicalisation keeps the
// parameters, their order and what their names decode to; FuzzStripQuery
// checks it), costs no second parse per link, and also matches names with
// a broken escape ("utm_%") as decoded as they can be.
func (r *Rules) canonical(base *url.URL, href string) (string, error) {
	var c string
	var err error
	if base == nil {
		c, err = urlnorm.Canonical(href)
	} else {
		c, err = urlnorm.Resolve(base, href)
	}
	if err != nil || len(r.strip) == 0 {
		return c, err
	}
	return stripQuery(c, r.strip), nil
}

// stripQuery drops from URL c the query parameters whose name (unescaped)
// matches a glob, keeping the others as written and in order; empty
// parameters go too. A URL with nothing to drop is returned as it is,
// without allocating.
func stripQuery(c string, globs []glob) string {
	i := strings.IndexByte(c, '?')
	if i < 0 {
		return c
	}
	var b strings.Builder // used from the first parameter dropped on
	building, empty := false, true
	for pos := i + 1; pos <= len(c); {
		end := strings.IndexByte(c[pos:], '&')
		if end < 0 {
			end = len(c)
		} else {
			end += pos
		}
		p := c[pos:end]
		switch drop := p == "" || matchAny(globs, paramName(p)); {
		case drop && !building:
			building = true
			b.Grow(len(c))
			b.WriteString(c[:i+1])
			if pos > i+1 { // the parameters kept so far, without the last '&'
				b.WriteString(c[i+1 : pos-1])
				empty = false
			}
		case !drop && building:
			if !empty {
				b.WriteByte('&')
			}
			b.WriteString(p)
			empty = false
		}
		pos = end + 1
	}
	switch {
	case !building:
		return c
	case empty:
		return c[:i] // nothing left: no '?'
	}
	return b.String()
}

// paramName is a query parameter's name, unescaped when it can be.
func paramName(p string) string {
	name, _, _ := strings.Cut(p, "=")
	if strings.ContainsAny(name, "%+") {
		if n, err := url.QueryUnescape(name); err == nil {
			return n
		}
	}
	return name
}

// glob is a strip_query pattern, with the two common shapes ("sid",
// "utm_*") matched without path.Match.
type glob struct {
	pat    string
	exact  bool // no wildcard: pat itself
	prefix bool // pat is a prefix followed by a single '*'
}

func compileGlobs(pats []string) []glob {
	var gs []glob
	for _, p := range pats {
		g := glob{pat: p}
		switch meta := strings.IndexAny(p, `*?[\`); {
		case meta < 0:
			g.exact = true
		case meta == len(p)-1 && p[meta] == '*':
			g.prefix, g.pat = true, p[:meta]
		}
		gs = append(gs, g)
	}
	return gs
}

func matchAny(globs []glob, name string) bool {
	for _, g := range globs {
		switch {
		case g.exact:
			if name == g.pat {
				return true
			}
		case g.prefix:
			// path.Match's '*' does not match '/'.
			if strings.HasPrefix(name, g.pat) && !strings.Contains(name[len(g.pat):], "/") {
				return true
			}
		default:
			if ok, _ := path.Match(g.pat, name); ok {
				return true
			}
		}
	}
	return false
}

// allowed checks a canonical URL against allowed_domains, then allow and
// deny (regular expressions on the whole URL).
func (r *Rules) allowed(c string) bool {
	if _, ok := r.domainAllowed(c); !ok {
		return false
	}
	if r.allow == nil && r.deny == nil {
		return true
	}
	decoded := urlnorm.Decoded(c)
	matches := func(m anyOf) bool { return m.match(c) || (decoded != "" && m.match(decoded)) }
	if r.allow != nil && !matches(r.allow) {
		return false
	}
	return r.deny == nil || !matches(r.deny)
}

// SeedRefused says why the crawl must not request start URL or seeds-file
// line c (canonical), or "": outside allowed_domains, or matching
// links.deny ("never requested"). links.allow does not apply: it chooses
// the links to follow, and a seed is the user's own choice.
func (r *Rules) SeedRefused(c string) string {
	if host, ok := r.domainAllowed(c); !ok {
		return "host " + host + " is not in allowed_domains"
	}
	if r.deny != nil {
		if p, ok := r.deny.which(c, urlnorm.Decoded(c)); ok {
			return "it matches links.deny " + strconv.Quote(p) + ", so it is never requested"
		}
	}
	return ""
}

// domainAllowed says whether canonical URL c's host is in allowed_domains
// (any host when none are given), and names the host.
func (r *Rules) domainAllowed(c string) (string, bool) {
	if len(r.domains) == 0 {
		return "", true
	}
	scheme, rest, _ := strings.Cut(c, "://")
	// A canonical URL has no user info and always a path, so the host
	// ends at the first '/': no second url.Parse per link.
	host, _, _ := strings.Cut(rest, "/")
	return host, spec.DomainAllowed(r.domains, &url.URL{Scheme: scheme, Host: host})
}

// linkSet gathers a page's links: checked, unique, in page order.
type linkSet struct {
	r    *Rules
	seen map[string]bool
	out  []string
}

func (s *linkSet) add(base *url.URL, href string) {
	c, err := s.r.canonical(base, href)
	if err != nil || s.seen[c] {
		return
	}
	if s.seen == nil {
		s.seen = map[string]bool{}
	}
	s.seen[c] = true // refused ones too: checked once per page
	if s.r.allowed(c) {
		s.out = append(s.out, c)
	}
}
