// Package envsubst expands ${env:NAME} references, the one way a spider
// spec reads secrets (API keys, passwords) from a worker's environment
// without the spec holding them.
//
// Only the exact form ${env:NAME} is a reference, NAME being
// [A-Za-z_][A-Za-z0-9_]*. Any other "$" is literal text, so "${x}" or
// "$HOME" pass through unchanged. Errors name the variable or the byte
// offset of the mistake, never a value or the surrounding text, so they are
// safe to log even when the string holds a secret.
package envsubst

import (
	"fmt"
	"os"
	"strings"
)

const open = "${env:"

// Expand replaces every ${env:NAME} in s with lookup(NAME). lookup nil
// means os.LookupEnv. A variable lookup does not know is an error; one set
// to "" expands to "".
func Expand(s string, lookup func(string) (string, bool)) (string, error) {
	if !strings.Contains(s, open) {
		return s, nil
	}
	if lookup == nil {
		lookup = os.LookupEnv
	}
	var b strings.Builder
	b.Grow(len(s))
	err := scan(s, func(lit string) { b.WriteString(lit) }, func(name string) error {
		v, ok := lookup(name)
		if !ok {
			return fmt.Errorf("environment variable %s is not set", name)
		}
		b.WriteString(v)
		return nil
	})
	if err != nil {
		return "", err
	}
	return b.String(), nil
}

// Check reports the first syntax mistake in s: a reference left open or
// one whose name is not a variable name.
func Check(s string) error {
	return scan(s, func(string) {}, func(string) error { return nil })
}

// Refs returns the names s refers to, each once, in order of first use.
// Malformed references are skipped (Check reports them).
func Refs(s string) []string {
	var names []string
	for rest := s; ; {
		i := strings.Index(rest, open)
		if i < 0 {
			return names
		}
		rest = rest[i+len(open):]
		j := strings.IndexByte(rest, '}')
		if j < 0 {
			return names
		}
		if name := rest[:j]; validName(name) && !contains(names, name) {
			names = append(names, name)
		}
		rest = rest[j+1:]
	}
}

// scan calls lit for the text between references and ref for each name.
func scan(s string, lit func(string), ref func(string) error) error {
	off := 0
	for {
		i := strings.Index(s[off:], open)
		if i < 0 {
			lit(s[off:])
			return nil
		}
		start := off + i
		lit(s[off:start])
		nameAt := start + len(open)
		j := strings.IndexByte(s[nameAt:], '}')
		if j < 0 {
			return fmt.Errorf("${env: at byte %d is not closed by }", start)
		}
		name := s[nameAt : nameAt+j]
		if !validName(name) {
			if name == "" {
				return fmt.Errorf("${env:} at byte %d names no variable", start)
			}
			// The text is not quoted: it may be a value typed in by mistake.
			return fmt.Errorf("${env:...} at byte %d: not a variable name (want letters, digits and _, not starting with a digit)", start)
		}
		if err := ref(name); err != nil {
			return err
		}
		off = nameAt + j + 1
	}
}

func validName(n string) bool {
	if n == "" {
		return false
	}
	for i := 0; i < len(n); i++ {
		c := n[i]
		switch {
		case c == '_', c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z':
		case c >= '0' && c <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// Literal says s holds text besides its references ("Bearer ${env:T}"
// does, "${env:U}${env:P}" does not): a credential written out.
func Literal(s string) bool {
	for _, n := range Refs(s) {
		s = strings.ReplaceAll(s, open+n+"}", "")
	}
	return s != ""
}

// UserInfo finds the user info of URL raw by hand, as url.Parse refuses
// the "${" of a reference there: user, password (after the first ':'
// outside a reference) and whether there is one; ok is false without user
// info. A '/', '?' or '#' inside a reference does not end the authority.
func UserInfo(raw string) (user, password string, hasPassword, ok bool) {
	_, rest, found := strings.Cut(raw, "://")
	if !found {
		return "", "", false, false
	}
	if end := indexOutside(rest, "/?#"); end >= 0 {
		rest = rest[:end]
	}
	at := strings.LastIndex(rest, "@")
	if at < 0 {
		return "", "", false, false
	}
	ui := rest[:at]
	if i := indexOutside(ui, ":"); i >= 0 {
		return ui[:i], ui[i+1:], true, true
	}
	return ui, "", false, true
}

// indexOutside is the index of the first byte of s among chars that is
// outside every ${...}, or -1.
func indexOutside(s, chars string) int {
	depth := 0
	for i := 0; i < len(s); i++ {
		switch {
		case strings.HasPrefix(s[i:], "${"):
			depth++
			i++
		case s[i] == '}' && depth > 0:
			depth--
		case depth == 0 && strings.IndexByte(chars, s[i]) >= 0:
			return i
		}
	}
	return -1
}
