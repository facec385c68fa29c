package envsubst_test

import (
	"strings"
	"testing"

	"github.com/crawlmesh/crawlmesh/pkg/envsubst"
)

func env(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func TestExpand(t *testing.T) {
	vars := env(map[string]string{"SHOP_KEY": "s3cret", "EMPTY": "", "_u2": "x"})
	for _, c := range []struct{ in, want string }{
		{"", ""},
		{"plain", "plain"},
		{"${env:SHOP_KEY}", "s3cret"},
		{"Bearer ${env:SHOP_KEY}!", "Bearer s3cret!"},
		{"${env:SHOP_KEY}${env:_u2}", "s3cretx"},
		{"a${env:EMPTY}b", "ab"},
		{"$HOME ${x} $${y} ${env", "$HOME ${x} $${y} ${env"},
		{"${ENV:SHOP_KEY}", "${ENV:SHOP_KEY}"},
		{"}${env:_u2}}", "}x}"},
	} {
		got, err := envsubst.Expand(c.in, vars)
		if err != nil || got != c.want {
			t.Errorf("Expand(%q) = %q, %v; want %q", c.in, got, err, c.want)
		}
	}
}

func TestExpandErrors(t *testing.T) {
	vars := env(map[string]string{"SET": "value-never-shown"})
	for _, c := range []struct{ in, want string }{
		{"${env:SHOP_KEY}", "environment variable SHOP_KEY is not set"},
		{"x ${env:SET} ${env:MISSING}", "environment variable MISSING is not set"},
		{"${env:SET", "not closed"},
		{"ok ${env:SET} ${env:", "byte 14"},
		{"${env:}", "names no variable"},
		{"${env:1A}", "not a variable name"},
		{"${env:A-B}", "not a variable name"},
		{"${env:A B}", "not a variable name"},
		{"${env:${env:SET}}", "not a variable name"},
	} {
		got, err := envsubst.Expand(c.in, vars)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Expand(%q) = %q, %v; want an error with %q", c.in, got, err, c.want)
			continue
		}
		if strings.Contains(err.Error(), "value-never-shown") {
			t.Errorf("Expand(%q): error %q shows a value", c.in, err)
		}
		if !strings.Contains(c.want, "is not set") {
			if cerr := envsubst.Check(c.in); cerr == nil || cerr.Error() != err.Error() {
				t.Errorf("Check(%q) = %v, want the syntax error %v", c.in, cerr, err)
			}
		}
	}
}

func TestExpandOSEnv(t *testing.T) {
	t.Setenv("CRAWLMESH_ENVSUBST_TEST", "from-os")
	got, err := envsubst.Expand("v=${env:CRAWLMESH_ENVSUBST_TEST}", nil)
	if err != nil || got != "v=from-os" {
		t.Errorf("Expand with os env = %q, %v", got, err)
	}
}

func TestCheck(t *testing.T) {
	for _, ok := range []string{"", "a", "${env:A}", "${env:a_1}${env:_}", "$ {env:1}", "${other:1}"} {
		if err := envsubst.Check(ok); err != nil {
			t.Errorf("Check(%q) = %v", ok, err)
		}
	}
}

func TestRefs(t *testing.T) {
	got := envsubst.Refs("${env:B} ${env:A} ${env:B} ${env:1bad} ${env:C")
	if strings.Join(got, ",") != "B,A" {
		t.Errorf("Refs = %q, want [B A]", got)
	}
	if got := envsubst.Refs("none"); got != nil {
		t.Errorf("Refs(none) = %q", got)
	}
}

func FuzzExpand(f *testing.F) {
	for _, s := range []string{"", "${env:A}", "${env:", "x${env:A}y${env:B}", "${env:}", "$${env:A}}"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		all := func(string) (string, bool) { return "v", true }
		got, err := envsubst.Expand(s, all)
		if (err == nil) != (envsubst.Check(s) == nil) {
			t.Fatalf("Expand and Check disagree on %q: %v", s, err)
		}
		if err == nil && len(envsubst.Refs(s)) == 0 && got != s {
			t.Fatalf("no refs but %q expanded to %q", s, got)
		}
	})
}

func TestLiteralAndUserInfo(t *testing.T) {
	for s, want := range map[string]bool{"": false, "${env:A}": false, "${env:A}${env:B}": false, "Bearer ${env:T}": true, "x": true} {
		if got := envsubst.Literal(s); got != want {
			t.Errorf("Literal(%q) = %v", s, got)
		}
	}
	for _, c := range []struct {
		raw, user, pass string
		hasPass, ok     bool
	}{
		{"http://p:3128", "", "", false, false},
		{"http://u:pw@p:3128/x?y#z", "u", "pw", true, true},
		{"http://${env:U}:${env:P}@p", "${env:U}", "${env:P}", true, true},
		{"http://TOKEN@p", "TOKEN", "", false, true},
		{"http://u@p/a@b", "u", "", false, true}, // an '@' in the path is not the user info's
		{"no scheme", "", "", false, false},
	} {
		u, p, hp, ok := envsubst.UserInfo(c.raw)
		if u != c.user || p != c.pass || hp != c.hasPass || ok != c.ok {
			t.Errorf("UserInfo(%q) = %q %q %v %v", c.raw, u, p, hp, ok)
		}
	}
}
