package extract

import (
	"regexp"
)

// collect gathers one field's value from the texts its selection yields,
// in order, and says when it has seen enough.
type collect struct {
	f    *field
	list []string
	one  string
	got  bool // one is set
	seen bool // something was selected
}

// add takes one selected text (ok false: a selected node without the
// field's attribute) and reports whether more are wanted.
func (c *collect) add(text string, ok bool) bool {
	if !c.seen {
		c.seen = true
		// Without regex or all, the first selected node is the value, even
		// one lacking the attribute ("", as before).
		if !c.f.all && c.f.regex == nil {
			c.one, c.got = text, true
			return false
		}
	}
	if !ok {
		return true
	}
	if c.f.regex != nil {
		m, matched := match(c.f.regex, text)
		if !matched {
			return true
		}
		text = m
	}
	if c.f.all {
		c.list = append(c.list, text)
		return true
	}
	c.one, c.got = text, true
	return false
}

// value is the field's value, or ok false when it is missing. Without a
// selection, a plain field is "" (emptyMissing false: HTML, as before) or
// missing (JSON: null and no output are missing).
func (c *collect) value(emptyMissing bool) (any, bool) {
	switch {
	case c.f.all:
		if c.list == nil {
			return []string{}, true
		}
		return c.list, true
	case c.got:
		return c.one, true
	case !c.seen && c.f.regex == nil && !emptyMissing:
		return "", true
	}
	return nil, false
}

// match runs re on text: the first group if re has one, else the match.
func match(re *regexp.Regexp, text string) (string, bool) {
	m := re.FindStringSubmatch(text)
	if m == nil {
		return "", false
	}
	if re.NumSubexp() > 0 {
		return m[1], true
	}
	return m[0], true
}

// empty reports a value that does not satisfy required: missing, "" or an
// empty list alike.
func empty(v any, ok bool) bool {
	if !ok {
		return true
	}
	switch v := v.(type) {
	case string:
		return v == ""
	case []string:
		return len(v) == 0
	}
	return false
}
