package extract

import (
	"regexp"
	"regexp/syntax"
	"strings"
	"unicode/utf8"
)

// anyOf matches a URL against a list of regular expressions, cheaply:
// allow and deny run on every link a crawl meets, and Go's regexp tries
// every start position of the URL. Most patterns hold a literal any match
// must contain ("/cart", "add=" in "[?&]add=", ".pdf" in "\.pdf$"): a
// strings.Contains decides when it is absent, and when the pattern is
// nothing but that literal.
type anyOf []pattern

type pattern struct {
	src  string         // the expression as written
	lit  string         // a literal every match contains ("" if none known)
	only bool           // the pattern is just lit
	re   *regexp.Regexp // nil when only
}

func compileAnyOf(exprs []string) (anyOf, error) {
	var m anyOf
	for _, e := range exprs {
		re, err := regexp.Compile(e)
		if err != nil {
			return nil, err
		}
		// Not re.LiteralPrefix: it calls "^0$" complete with prefix "0"
		// (an anchored one-pass program), yet "00" does not match it.
		if lit, complete := wholeLiteral(e); complete {
			m = append(m, pattern{src: e, lit: lit, only: true})
			continue
		}
		m = append(m, pattern{src: e, lit: requiredLiteral(e), re: re})
	}
	return m, nil
}

func (m anyOf) match(s string) bool {
	for _, p := range m {
		if p.matches(s) {
			return true
		}
	}
	return false
}

// which returns the first pattern that matches canonical URL c or its
// decoded form (see urlnorm.Decoded; "" for none).
func (m anyOf) which(c, decoded string) (string, bool) {
	for _, p := range m {
		if p.matches(c) || decoded != "" && p.matches(decoded) {
			return p.src, true
		}
	}
	return "", false
}

func (p pattern) matches(s string) bool {
	if p.lit != "" && !strings.Contains(s, p.lit) {
		return false
	}
	return p.only || p.re.MatchString(s)
}

// wholeLiteral reports whether expr matches exactly one literal, anywhere
// in a string, and returns it.
func wholeLiteral(expr string) (string, bool) {
	t, err := syntax.Parse(expr, syntax.Perl)
	if err != nil {
		return "", false
	}
	t = t.Simplify()
	for t.Op == syntax.OpCapture {
		t = t.Sub[0]
	}
	lit, ok := caseSensitiveLiteral(t)
	return lit, ok
}

// requiredLiteral returns the longest case-sensitive literal among the
// top-level parts of expr, which every match contains; "" if it has none.
func requiredLiteral(expr string) string {
	t, err := syntax.Parse(expr, syntax.Perl)
	if err != nil {
		return ""
	}
	t = t.Simplify()
	for t.Op == syntax.OpCapture {
		t = t.Sub[0]
	}
	parts := []*syntax.Regexp{t}
	if t.Op == syntax.OpConcat {
		parts = t.Sub
	}
	best := ""
	for _, p := range parts {
		for p.Op == syntax.OpCapture {
			p = p.Sub[0]
		}
		if lit, ok := caseSensitiveLiteral(p); ok && len(lit) > len(best) {
			best = lit
		}
	}
	return best
}

// caseSensitiveLiteral returns t's text when t is a literal that
// strings.Contains can look for.
func caseSensitiveLiteral(t *syntax.Regexp) (string, bool) {
	if t.Op != syntax.OpLiteral || t.Flags&syntax.FoldCase != 0 {
		return "", false
	}
	lit := string(t.Rune)
	// regexp reads an invalid byte as U+FFFD; Contains would not.
	if strings.ContainsRune(lit, utf8.RuneError) {
		return "", false
	}
	return lit, true
}
