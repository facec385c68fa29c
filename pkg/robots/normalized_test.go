package robots

import "testing"

// TestAllowedNormalized: for canonical paths (unreserved escapes decoded),
// rules are compared with theirs decoded, as RFC 9309 §2.2.2 says: a
// "Disallow: /%7ejoe" kept nobody out of "/~joe" (found by review).
// Allowed keeps Google's reading (see google_cases_test.go).
func TestAllowedNormalized(t *testing.T) {
	r := Parse([]byte("User-agent: *\nDisallow: /%7ejoe\nDisallow: /a%2Fb\nAllow: /%7ejoe/pub$\n"))
	for _, c := range []struct {
		path string
		want bool
	}{
		{"/~joe", false},
		{"/~joe/x", false},
		{"/~joe/pub", true},
		{"/a%2Fb", false}, // a reserved escape stays an escape
		{"/a/b", true},
		{"/other", true},
	} {
		if got := r.AllowedNormalized("bot", c.path); got != c.want {
			t.Errorf("AllowedNormalized(%q) = %v, want %v", c.path, got, c.want)
		}
	}
	if !r.Allowed("bot", "/~joe") {
		t.Error("Allowed(/~joe) = false: the Google reading compares rules as written")
	}
}
