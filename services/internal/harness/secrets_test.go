package harness

import (
	"encoding/base64"
	"encoding/json"
	"net/url"
	"testing"
)

// TestSecretsFind: a secret is found as is, escaped for a URL or JSON, and
// inside base64 whatever precedes it; other text is not a match.
func TestSecretsFind(t *testing.T) {
	const pw = "open sesame/42&\"x"
	s := Secrets{"password": pw}
	b64 := func(prefix string) string { return base64.StdEncoding.EncodeToString([]byte(prefix + pw + "tail")) }
	js, _ := json.Marshal(map[string]string{"p": pw})
	for name, text := range map[string]string{
		"raw":        "x" + pw + "y",
		"query":      "a=" + url.QueryEscape(pw),
		"path":       "/" + url.PathEscape(pw),
		"json":       string(js),
		"base64 +0":  b64(""),
		"base64 +1":  b64("a"),
		"base64 +2":  b64("ab"),
		"base64 url": base64.URLEncoding.EncodeToString([]byte("abc" + pw)),
	} {
		if got := s.Find(text); len(got) != 1 || got[0] != "password" {
			t.Errorf("%s: Find(%q) = %v, want [password]", name, text, got)
		}
	}
	for _, text := range []string{"", "open sesame", "open-sesame/42", base64.StdEncoding.EncodeToString([]byte("open sesame"))} {
		if got := s.Find(text); len(got) != 0 {
			t.Errorf("Find(%q) = %v, want nothing", text, got)
		}
	}
	l := NewLeakScan(s)
	l.Check("logs", "the log of w1", "login with "+pw)
	l.Check("logs", "the log of w2", "login with [redacted]")
	if got := l.Leaks(); len(got) != 1 || got[0] != "password in the log of w1" {
		t.Errorf("Leaks() = %v", got)
	}
	if l.Scanned["logs"] != 2 {
		t.Errorf("Scanned = %v", l.Scanned)
	}
}
