package robots

import (
	"slices"
	"strings"
	"time"

	"github.com/crawlmesh/crawlmesh/pkg/urlnorm"
)

// MaxSize is how much of a robots.txt body is parsed: 500 KiB, Google's
// limit and the least RFC 9309 §2.5 allows. A fetcher need not read more.
const MaxSize = 500 << 10

// Robots is a parsed robots.txt, or the verdict standing in for one when the
// file could not be read (see [ForStatus]). It is immutable and safe for
// concurrent use. The zero value allows everything, like an empty file.
type Robots struct {
	kind     Kind
	groups   []group
	sitemaps []string
}

// group is a run of User-agent lines and the lines that follow them up to
// the next User-agent line that comes after an Allow or Disallow line.
type group struct {
	global bool    // one of its User-agent lines is "*"
	agents []agent // its User-agent lines, "*" ones included
	rules  []rule  // Allow and Disallow lines with a non-empty value
}

// agent is one User-agent line and the Crawl-delay that applies to it.
type agent struct {
	token    string // lower-cased product token, or "*"
	delay    time.Duration
	hasDelay bool
}

// rule is one Allow or Disallow line.
type rule struct {
	allow    bool
	prio     int      // length of the escaped pattern: the longest match wins
	lit      string   // pattern without a trailing '$'
	anchored bool     // the pattern ends in '$': it must match the whole path
	segs     []string // lit split at '*', if it holds one; else nil
	// decoded is the rule with escapes of unreserved characters decoded
	// ("/%7Ejoe" as "/~joe"), for paths so normalised; nil when the same.
	decoded *rule
}

// Parse reads a robots.txt body. It never fails: a line it cannot read is
// skipped and the rest still counts. Only the first [MaxSize] bytes are
// read; a line cut by that limit is dropped rather than read as a shorter
// rule than the site wrote.
func Parse(body []byte) *Robots {
	if len(body) > MaxSize {
		end := MaxSize
		if c := body[MaxSize]; c != '\n' && c != '\r' {
			end = max(0, lastLineEnd(body[:MaxSize]))
		}
		body = body[:end]
	}
	b := builder{r: &Robots{kind: KindParsed}, cur: -1}
	scan(string(body), b.line)
	b.r.groups = slices.DeleteFunc(b.r.groups, func(g group) bool {
		return len(g.agents) == 0 // a group no product token can select
	})
	return b.r
}

// lastLineEnd is the index just past the last CR or LF in b, or -1.
func lastLineEnd(b []byte) int {
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] == '\n' || b[i] == '\r' {
			return i + 1
		}
	}
	return -1
}

// builder turns lines into groups. Its rules are Google's RobotsMatcher's:
// consecutive User-agent lines share a group, and only an Allow or Disallow
// line ends the run, so a Sitemap, Crawl-delay or unknown line between two
// User-agent lines does not split them. Allow and Disallow lines before the
// first User-agent line belong to no group and are ignored.
type builder struct {
	r      *Robots
	cur    int  // index of the current group in r.groups, -1 before the first
	closed bool // a rule has been seen since the last User-agent line
	seen   map[string]bool
	// Crawl-delay applies to agents[delayFrom:] of the current group, the
	// User-agent lines since its last Crawl-delay line; if there are none,
	// to the lines that one applied to, agents[lastFrom:delayFrom].
	delayFrom, lastFrom int
}

func (b *builder) line(l line) {
	switch l.key {
	case keyUserAgent:
		if b.cur < 0 || b.closed {
			b.r.groups = append(b.r.groups, group{})
			b.cur, b.closed = len(b.r.groups)-1, false
			b.delayFrom, b.lastFrom = 0, 0
		}
		g := &b.r.groups[b.cur]
		if isGlobalAgent(l.value) {
			g.global = true
			g.agents = append(g.agents, agent{token: "*"})
		} else if t := leadingToken(l.value); t != "" {
			g.agents = append(g.agents, agent{token: strings.Clone(strings.ToLower(t))})
		}
	case keyAllow, keyDisallow:
		if b.cur < 0 {
			return
		}
		b.closed = true
		g := &b.r.groups[b.cur]
		g.rules = appendRules(g.rules, l.key == keyAllow, l.value)
	case keyCrawlDelay:
		if b.cur < 0 {
			return
		}
		g := &b.r.groups[b.cur]
		if b.delayFrom < len(g.agents) {
			b.lastFrom, b.delayFrom = b.delayFrom, len(g.agents)
		}
		if d, ok := parseCrawlDelay(l.value); ok {
			for i := b.lastFrom; i < b.delayFrom; i++ {
				a := &g.agents[i]
				a.delay, a.hasDelay = max(a.delay, d), true
			}
		}
	case keySitemap:
		if l.value == "" || b.seen[l.value] {
			return
		}
		if b.seen == nil {
			b.seen = map[string]bool{}
		}
		b.seen[l.value] = true
		b.r.sitemaps = append(b.r.sitemaps, strings.Clone(l.value))
	}
}

// appendRules adds the rule for one Allow or Disallow value. An empty value
// matches with priority 0, which never decides anything, so it adds none.
//
// Google-specific: an Allow whose last path segment starts with
// "index.htm" also allows its directory, as if "Allow: <dir>/$" were
// written too. Google tries that pattern only when the original does not
// match; adding it always is the same, because it is shorter and a match of
// the original outranks it.
func appendRules(rules []rule, allow bool, pattern string) []rule {
	if pattern == "" {
		return rules
	}
	pattern = strings.Clone(pattern) // do not keep the whole body alive
	rules = append(rules, newRule(allow, pattern))
	if allow {
		if slash := strings.LastIndexByte(pattern, '/'); slash >= 0 &&
			strings.HasPrefix(pattern[slash:], "/index.htm") {
			rules = append(rules, newRule(true, pattern[:slash+1]+"$"))
		}
	}
	return rules
}

func newRule(allow bool, pattern string) rule {
	r := rule{allow: allow, prio: len(pattern), lit: pattern}
	if strings.HasSuffix(pattern, "$") {
		r.lit, r.anchored = pattern[:len(pattern)-1], true
	}
	if strings.IndexByte(r.lit, '*') >= 0 {
		r.segs = strings.Split(r.lit, "*")
	}
	// Escapes of unreserved characters decoded, as RFC 9309 §2.2.2 says
	// to before comparing; others stay (upper-case already).
	if d := urlnorm.NormalizeEscapes(pattern); d != pattern {
		dr := newRule(allow, d)
		dr.prio = r.prio // the pattern as written decides the order
		r.decoded = &dr
	}
	return r
}

// Sitemaps returns the value of every Sitemap line, in file order, without
// repeats. Sitemap lines belong to no group: they count wherever they stand,
// even before the first User-agent line. Values are as written (not
// resolved or checked); a relative one is the caller's to resolve against
// the robots.txt URL or drop.
func (r *Robots) Sitemaps() []string {
	return slices.Clone(r.sitemaps)
}
