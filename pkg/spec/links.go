package spec

import "strings"

// Links says which links of a page are followed and how their URLs are
// cleaned. It replaces the top-level Follow (still accepted, same
// meaning); giving both is a mistake.
type Links struct {
	Follow []string `json:"follow,omitempty" yaml:"follow"` // CSS selectors whose href is followed
	JSON   []string `json:"json,omitempty" yaml:"json"`     // jq expressions yielding URLs from a JSON response
	// Allow and Deny are regular expressions (RE2) on the canonical URL: a
	// URL must match one of Allow (when any is given) and none of Deny.
	Allow []string `json:"allow,omitempty" yaml:"allow"`
	Deny  []string `json:"deny,omitempty" yaml:"deny"`
	// StripQuery are globs (path.Match) of query parameter names dropped
	// from every URL before it is canonicalised, requested, de-duplicated.
	StripQuery []string `json:"strip_query,omitempty" yaml:"strip_query"`
	// Nofollow: honour rel="nofollow" (nil: true).
	Nofollow *bool `json:"nofollow,omitempty" yaml:"nofollow"`
}

// FollowSelectors returns the CSS selectors whose matches' href is
// followed: links.follow, or the top-level follow.
func (s *Spec) FollowSelectors() []string {
	if s.Links != nil && len(s.Links.Follow) > 0 {
		return s.Links.Follow
	}
	return s.Follow
}

// HonourNofollow reports whether rel="nofollow" links are skipped (the
// default, also when l is nil).
func (l *Links) HonourNofollow() bool { return l == nil || l.Nofollow == nil || *l.Nofollow }

func (c *checker) links(s *Spec) {
	for i, sel := range s.Follow {
		if err := checkSelector(sel); err != nil {
			c.add("follow[%d] %q: bad CSS selector: %v", i, sel, err)
		}
	}
	l := s.Links
	if l == nil {
		return
	}
	if len(s.Follow) > 0 && len(l.Follow) > 0 {
		c.add("follow and links.follow: both are given; links.follow replaces follow, keep one")
	}
	for i, sel := range l.Follow {
		if err := checkSelector(sel); err != nil {
			c.add("links.follow[%d] %q: bad CSS selector: %v", i, sel, err)
		}
	}
	for i, e := range l.JSON {
		if err := checkJQ(e); err != nil {
			c.add("links.json[%d] %q: bad jq expression: %v", i, e, err)
		}
	}
	for i, re := range l.Allow {
		if err := checkRegex(re); err != nil {
			c.add("links.allow[%d] %q: %v", i, re, err)
		}
	}
	for i, re := range l.Deny {
		if err := checkRegex(re); err != nil {
			c.add("links.deny[%d] %q: %v", i, re, err)
		}
	}
	for i, g := range l.StripQuery {
		if err := checkGlob(g); err != nil {
			c.add("links.strip_query[%d] %q: %v", i, g, err)
		}
	}
}

// goSpider refuses what a Go spider does itself: finding links and items.
func (c *checker) goSpider(s *Spec) {
	if s.Go == "" {
		return
	}
	if given := replacedFields(s); len(given) > 0 {
		c.add("go %q: a Go spider defines its own follow and items; remove %s from the spec", s.Go, strings.Join(given, ", "))
	}
}

// replacedFields lists the fields of s that a spider's own code (go,
// script, command) replaces: giving both is a mistake.
func replacedFields(s *Spec) []string {
	var given []string
	if len(s.Follow) > 0 {
		given = append(given, "follow")
	}
	if s.Links != nil && len(s.Links.Follow) > 0 {
		given = append(given, "links.follow")
	}
	if s.Links != nil && len(s.Links.JSON) > 0 {
		given = append(given, "links.json")
	}
	if len(s.Items) > 0 {
		given = append(given, "items")
	}
	return given
}
