package sink

import "testing"

func TestFitsInto(t *testing.T) {
	for _, tc := range []struct {
		raw, val string
		ok       bool
	}{
		{"postgres://app:${env:V}@h/db", "plain-Pass_1~", true},
		{"postgres://app:${env:V}@h/db", "Se%40cr3t", true}, // percent-encoded, as README says
		{"postgres://app:${env:V}@h/db", "Se@cr3t", false},
		{"postgres://app:${env:V}@h/db", "a/b", false},
		{"postgres://app:${env:V}@h/db", "a#b", false},
		{"postgres://app:${env:V}@h/db", "100%", false},
		{"postgres://app:${env:V}@h/db", "%zz", false},
		{"http://h/hook?token=${env:V}", "a&b=c", false},
		{"http://h/hook?token=${env:V}", "a b", false},
		{"host=h password=${env:V}", "a@b/c#d", true},
		{"host=h password=${env:V}", "a b", false},
		{"host=h password='${env:V}'", "a b", true},
		{"host=h password='${env:V}'", "it's", false},
		{"host=h password=${env:V}", "a\nb", false},
		// Where '/' and the like belong, they pass (diff review).
		{"https://hooks.slack.com/services/${env:V}", "T000/B000/XXXX", true},
		{"https://h/hook?token=${env:V}", "ab/cd+ef==", true},
		{"${env:V}", "host=db user=app password=x y", true}, // the whole destination
		{"https://h/hook?token=${env:V}&x=1", "a#b", false},
		{"https://h/p/${env:V}", "a?b", false},
		{"https://${env:V}/hook", "evil.example/x", false},
	} {
		err := fitsInto(tc.raw, map[string]string{"V": tc.val})
		if (err == nil) != tc.ok {
			t.Errorf("%s with %q: %v, want ok %v", tc.raw, tc.val, err, tc.ok)
		}
	}
}
