package extract

import "time"

// SetJQTimeout lets tests shorten the jq budget of a page.
func SetJQTimeout(d time.Duration) (restore func()) {
	old := jqTimeout
	jqTimeout = d
	return func() { jqTimeout = old }
}

// DenyMatches reports whether s matches one of r's deny expressions.
func DenyMatches(r *Rules, s string) bool { return r.deny.match(s) }
