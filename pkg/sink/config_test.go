package sink_test

import (
	"strings"
	"testing"
	"time"

	"github.com/crawlmesh/crawlmesh/pkg/sink"
)

func TestValidate(t *testing.T) {
	pg := func(url, table string) sink.Sink {
		return sink.Sink{Name: "db", Type: sink.TypePostgres, Postgres: &sink.Postgres{URL: url, Table: table}}
	}
	hook := func(url string) sink.Sink {
		return sink.Sink{Name: "hook", Type: sink.TypeWebhook, Webhook: &sink.Webhook{URL: url}}
	}
	for _, tc := range []struct {
		s    sink.Sink
		want string // "" valid, else a part of the error
	}{
		{pg("postgres://app:${env:PGPASS}@db:5432/items", ""), ""},
		{pg("postgres://app@db/items?sslmode=disable", "public.items"), ""},
		{pg("host=db dbname=items user=app password=${env:PGPASS}", ""), ""},
		{pg("postgres://app:hunter2@db/items", ""), "the URL holds a password: give the password as ${env:NAME}"},
		{pg("postgres://app@db/items?password=hunter2", ""), "password parameter"},
		{pg("host=db password=hunter2", ""), "password= holds a password"},
		// libpq allows spaces around '=' and quoted values: pgx sends
		// these passwords as surely (found by review).
		{pg("host=db password = hunter2", ""), "password= holds a password"},
		{pg("host=db password= 'hunter2 x'", ""), "password= holds a password"},
		{pg("host=db PASSWORD='hunt\\'er2'", ""), "password= holds a password"},
		{pg("host=db password = '${env:PGPASS}' dbname=items", ""), ""},
		{pg("host=db password", ""), "missing '='"},
		{pg("host=db password='${env:PGPASS}", ""), "no closing quote"},
		{pg("postgres://app:${env:PGPASS@db/items", ""), "--postgres"},
		{pg("postgres://db/items", "items; drop table x"), "--table"},
		{pg("", ""), "empty URL"},
		{hook("https://example.com/hook?token=${env:TOKEN}"), ""},
		{hook("ftp://example.com/"), "want an http:// or https:// URL"},
		{hook("https://u:pw@example.com/"), "holds a password"},
		{hook("https://example.com/hook?token=hunter2"), `query parameter "token" holds a literal credential`},
		{hook("https://example.com/hook?x=1&api_key=hunter2"), `"api_key"`},
		{hook("https://example.com/hook?jwt=eyJhbGciOi"), `"jwt"`},
		{hook("https://TOKEN123@example.com/hook"), "user info"},
		{hook("https://${env:HOOK_USER}@example.com/hook"), ""},
		{hook("https://example.com/hook?session=abc123"), `"session"`},
		{hook("https://example.com/hook?sig=pre${env:SIG}"), `"sig"`},
		{hook("https://example.com/hook?page=2&access_token=${env:T}"), ""},
		{hook("http://127.0.0.1:99999/x"), "port 99999"},
		{sink.Sink{Name: "Bad_Name", Type: sink.TypeWebhook, Webhook: &sink.Webhook{URL: "http://x/"}}, "name"},
		{sink.Sink{Name: "x", Type: "kafka"}, `type "kafka"`},
		{sink.Sink{Name: "x", Type: sink.TypeWebhook, Spiders: []string{"Books!"}, Webhook: &sink.Webhook{URL: "http://x/"}}, "--spider"},
		{sink.Sink{Name: "x", Type: sink.TypeWebhook, BatchSize: 20000, Webhook: &sink.Webhook{URL: "http://x/"}}, "--batch-size"},
		{sink.Sink{Name: "x", Type: sink.TypeWebhook, Webhook: &sink.Webhook{URL: "http://x/", GiveUp: sink.Duration(time.Millisecond)}}, "--give-up"},
	} {
		s := tc.s
		s.Normalize()
		err := s.Validate()
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%+v: %v", s, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%+v: got %v, want an error with %q", s, err, tc.want)
		case err != nil && strings.Contains(err.Error(), "hunter2"):
			t.Errorf("the error repeats the password: %v", err)
		}
	}
}

func TestTargetRedacts(t *testing.T) {
	for in, want := range map[string]string{
		"postgres://app:${env:PGPASS}@db:5432/items": "postgres://app:${env:PGPASS}@db:5432/items table crawlmesh_items",
		"postgres://app:hunter2@db/items":            "postgres://app:***@db/items table crawlmesh_items",
		"host=db password=hunter2":                   "host=db password=*** table crawlmesh_items",
		"host=db password = hunter2 dbname=items":    "host=db password=*** dbname=items table crawlmesh_items",
		"host=db password='${env:PGPASS}'":           "host=db password='${env:PGPASS}' table crawlmesh_items",
	} {
		s := sink.Sink{Type: sink.TypePostgres, Postgres: &sink.Postgres{URL: in}}
		s.Normalize()
		if got := s.Target(); got != want {
			t.Errorf("Target(%q) = %q, want %q", in, got, want)
		}
	}
	// Sinks stored by an older version, which let these through.
	for in, want := range map[string]string{
		"https://example.com/hook?token=hunter2&page=2":    "https://example.com/hook?page=2&token=***",
		"https://example.com/hook?token=${env:HOOK_TOKEN}": "https://example.com/hook?token=${env:HOOK_TOKEN}",
	} {
		s := sink.Sink{Type: sink.TypeWebhook, Webhook: &sink.Webhook{URL: in}}
		if got := s.Target(); got != want {
			t.Errorf("Target(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestUnsetVariable: a master without the variable reports the sink as
// failing, naming the variable.
func TestUnsetVariable(t *testing.T) {
	e := newEnv(t)
	e.add(sink.Sink{Name: "db", Type: sink.TypePostgres, Postgres: &sink.Postgres{URL: "postgres://app:${env:NOPE}@127.0.0.1:1/x"}})
	e.run(func(string) (string, bool) { return "", false })
	eventually(t, 10*time.Second, "the sink failing", func() bool { return e.status("db").State == sink.StateFailing })
	if st := e.status("db"); !st.Permanent || !strings.Contains(st.LastError, "environment variable NOPE is not set") {
		t.Fatalf("status %+v", st)
	}
}

// TestValueThatChangesTheDestination: a variable's value that would
// change the URL's parts ('@' in a password) is refused naming the
// variable and the character, never printing the value: the driver read
// the rest of the password as the host and its error printed it (found
// by review).
func TestValueThatChangesTheDestination(t *testing.T) {
	e := newEnv(t)
	e.add(sink.Sink{Name: "db", Type: sink.TypePostgres, Postgres: &sink.Postgres{URL: "postgres://app:${env:PW}@127.0.0.1:1/x"}})
	e.add(sink.Sink{Name: "kw", Type: sink.TypePostgres, Postgres: &sink.Postgres{URL: "host=127.0.0.1 port=1 user=app password=${env:PW2}"}})
	e.add(sink.Sink{Name: "hook", Type: sink.TypeWebhook, Webhook: &sink.Webhook{URL: "http://127.0.0.1:1/h?token=${env:TOK}"}})
	env := map[string]string{"PW": "Se@cr3tTail99", "PW2": "two words", "TOK": "abc&admin=1"}
	e.run(func(n string) (string, bool) { v, ok := env[n]; return v, ok })
	for name, want := range map[string]string{"db": "${env:PW} holds '@'", "kw": "${env:PW2} holds ' '", "hook": "${env:TOK} holds '&'"} {
		eventually(t, 10*time.Second, name+" failing", func() bool { return e.status(name).State == sink.StateFailing })
		if st := e.status(name); !st.Permanent || !strings.Contains(st.LastError, want) {
			t.Errorf("%s: status %+v, want a fix asked for, saying %q", name, st, want)
		}
	}
	for _, secret := range []string{"cr3tTail99", "words", "admin=1"} {
		for _, name := range []string{"db", "kw", "hook"} {
			if st := e.status(name); strings.Contains(st.LastError, secret) {
				t.Errorf("%s's status holds %q: %s", name, secret, st.LastError)
			}
		}
		if strings.Contains(e.logs.String(), secret) {
			t.Errorf("the logs hold %q:\n%s", secret, e.logs.String())
		}
	}
}
