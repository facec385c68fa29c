package extract

import (
	"fmt"
	"regexp"
	"sort"
	"sync"

	"github.com/andybalholm/cascadia"
	"github.com/antchfx/xpath"
	"github.com/itchyny/gojq"

	"github.com/crawlmesh/crawlmesh/pkg/spec"
	"github.com/crawlmesh/crawlmesh/pkg/urlnorm"
)

// Rules are a spec's extraction rules, compiled. They are read-only after
// Compile and safe for concurrent use.
type Rules struct {
	domains  []string // allowed_domains
	allow    anyOf    // nil: every URL
	deny     anyOf    // nil: none
	strip    []glob   // strip_query
	follow   []cascadia.SelectorGroup
	nofollow bool
	jsonLink []*gojq.Code
	items    []*itemRule
	html     bool // some rule reads HTML: parse HTML pages
	json     bool // some rule reads JSON: decode JSON pages
}

type itemRule struct {
	index  int    // in the spec's items: names the rule in warnings
	kind   string // spec.KindCSS, KindXPath or KindJSON
	css    cascadia.SelectorGroup
	xpath  *xpathExpr
	jq     *gojq.Code
	url    *regexp.Regexp // nil: every page
	fields []*field       // required ones first: an element lacking one is dropped early
}

type field struct {
	name     string
	css      cascadia.SelectorGroup
	xpath    *xpathExpr
	jq       *gojq.Code
	attr     string
	regex    *regexp.Regexp
	all      bool
	required bool
}

// Compile validates s and compiles its rules.
func Compile(s *spec.Spec) (*Rules, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	r := &Rules{domains: s.AllowedDomains, nofollow: s.Links.HonourNofollow()}
	var err error
	css := func(sel string) cascadia.SelectorGroup {
		g, e := cascadia.ParseGroup(sel)
		if e != nil && err == nil {
			err = fmt.Errorf("CSS selector %q: %w", sel, e)
		}
		return g
	}
	re := func(expr string) *regexp.Regexp {
		x, e := regexp.Compile(expr)
		if e != nil && err == nil {
			err = fmt.Errorf("regular expression %q: %w", expr, e)
		}
		return x
	}
	jq := func(expr string) *gojq.Code {
		c, e := compileJQ(expr)
		if e != nil && err == nil {
			err = e
		}
		return c
	}
	xp := func(expr string) *xpathExpr {
		x, e := compileXPath(expr)
		if e != nil && err == nil {
			err = e
		}
		return x
	}
	for _, sel := range s.FollowSelectors() {
		r.follow = append(r.follow, css(sel))
	}
	if l := s.Links; l != nil {
		for _, e := range l.JSON {
			r.jsonLink = append(r.jsonLink, jq(e))
		}
		if len(l.Allow) > 0 {
			r.allow = anyOfs(l.Allow, &err)
		}
		if len(l.Deny) > 0 {
			r.deny = anyOfs(l.Deny, &err)
		}
		r.strip = compileGlobs(l.StripQuery)
	}
	r.html, r.json = len(r.follow) > 0, len(r.jsonLink) > 0
	for i, it := range s.Items {
		ir := &itemRule{index: i, kind: it.Kind()}
		switch ir.kind {
		case spec.KindCSS:
			ir.css, r.html = css(it.Selector), true
		case spec.KindXPath:
			ir.xpath, r.html = xp(it.XPath), true
		case spec.KindJSON:
			ir.jq, r.json = jq(it.JSON), true
		}
		if it.URL != "" {
			ir.url = re(it.URL)
		}
		required := map[string]bool{}
		for _, n := range it.Required {
			required[n] = true
		}
		for name, f := range it.Fields {
			cf := &field{name: name, attr: f.Attr, all: f.All, required: required[name]}
			switch {
			case f.CSS != "":
				cf.css = css(f.CSS)
			case f.XPath != "":
				cf.xpath = xp(f.XPath)
			case f.JSON != "":
				cf.jq = jq(f.JSON)
			}
			if f.Regex != "" {
				cf.regex = re(f.Regex)
			}
			ir.fields = append(ir.fields, cf)
		}
		sort.Slice(ir.fields, func(i, j int) bool {
			a, b := ir.fields[i], ir.fields[j]
			if a.required != b.required {
				return a.required
			}
			return a.name < b.name
		})
		r.items = append(r.items, ir)
	}
	if err != nil {
		return nil, err
	}
	return r, nil
}

func anyOfs(exprs []string, err *error) anyOf {
	m, e := compileAnyOf(exprs)
	if e != nil && *err == nil {
		*err = fmt.Errorf("regular expressions %q: %w", exprs, e)
	}
	return m
}

// compileJQ compiles a jq expression without access to the environment
// (gojq's default): a spec must not read a worker's secrets into URLs.
func compileJQ(expr string) (*gojq.Code, error) {
	q, err := gojq.Parse(expr)
	if err != nil {
		return nil, fmt.Errorf("jq expression %q: %w", expr, err)
	}
	c, err := gojq.Compile(q)
	if err != nil {
		return nil, fmt.Errorf("jq expression %q: %w", expr, err)
	}
	return c, nil
}

// xpathExpr hands out compiled copies of one XPath expression: an
// *xpath.Expr keeps state while it evaluates, so each goroutine needs its
// own, and a pool reuses them.
type xpathExpr struct {
	pool sync.Pool
}

func compileXPath(expr string) (*xpathExpr, error) {
	first, err := xpath.Compile(expr)
	if err != nil {
		return nil, fmt.Errorf("XPath %q: %w", expr, err)
	}
	x := &xpathExpr{}
	// Compiled once already, so compiling again cannot fail.
	x.pool.New = func() any { return xpath.MustCompile(expr) }
	x.pool.Put(first)
	return x, nil
}

func (x *xpathExpr) get() *xpath.Expr  { return x.pool.Get().(*xpath.Expr) }
func (x *xpathExpr) put(e *xpath.Expr) { x.pool.Put(e) }

// matchesURL: the rule's url pattern matches the page's canonical URL or
// its decoded form, as link rules do ("/bücher/" matches /b%C3%BCcher/1).
func (ir *itemRule) matchesURL(pageURL string) bool {
	if ir.url.MatchString(pageURL) {
		return true
	}
	d := urlnorm.Decoded(pageURL)
	return d != "" && ir.url.MatchString(d)
}
