package httpapi

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/crawlmesh/crawlmesh/pkg/mesh"
	"github.com/crawlmesh/crawlmesh/pkg/sink"
	"github.com/crawlmesh/crawlmesh/streams"
	"github.com/crawlmesh/crawlmesh/streams/streamstest"
)

// TestSinksAPI: the sink routes on a real bucket sinks: reads are open,
// writes need the token, bad input is refused with the CLI's messages
// (a literal password among them) and stores nothing, and a ${env:NAME}
// reference is shown as written, never resolved, in any response.
func TestSinksAPI(t *testing.T) {
	const secret = "s3cr3t-never-shown"
	t.Setenv("CRAWLMESH_TEST_HOOK_TOKEN", secret)
	t.Setenv("CRAWLMESH_TEST_PGPASS", secret)
	nc, js := streamstest.Start(t, streams.Options{})
	const token = "0123456789abcdef"
	h := Handler(Config{Token: token, NC: nc, JS: js})
	do := func(method, path, auth, body string) (int, string) {
		t.Helper()
		req := httptest.NewRequest(method, path, strings.NewReader(body))
		if auth != "" {
			req.Header.Set("Authorization", "Bearer "+auth)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if strings.Contains(rec.Body.String(), secret) {
			t.Errorf("%s %s: the response holds the value of a ${env:...} reference: %s", method, path, rec.Body)
		}
		return rec.Code, rec.Body.String()
	}
	// The CLI's refusal of a literal password, word for word.
	_, cliErr := sink.Build(sink.Spec{Name: "db", Postgres: "postgres://app:hunter2@db:5432/items"}, time.Now())
	if cliErr == nil {
		t.Fatal("sink.Build took a literal password")
	}
	pwMsg, _ := json.Marshal(cliErr.Error())
	hook := `{"webhook":"http://127.0.0.1:9/hook?token=${env:CRAWLMESH_TEST_HOOK_TOKEN}","spiders":["books"],"batch_size":50,"batch_wait":"200ms","give_up":"30s"}`
	for _, tc := range []struct {
		method, path, auth, body string
		want                     int
		substr                   string
	}{
		{"GET", "/api/v1/sinks", "", "", 200, `[]`},
		{"PUT", "/api/v1/sinks/hook", "", hook, 401, "token"},
		{"PUT", "/api/v1/sinks/hook", "wrong-token-000000", hook, 401, "token"},
		{"DELETE", "/api/v1/sinks/hook", "", "", 401, "token"},
		{"PUT", "/api/v1/sinks/db", token, `{"postgres":"postgres://app:hunter2@db:5432/items"}`, 400, strings.Trim(string(pwMsg), `"`)},
		{"PUT", "/api/v1/sinks/db", token, `{"postgres":"host=db password=hunter2 dbname=items"}`, 400, "password= holds a password"},
		{"PUT", "/api/v1/sinks/hook2", token, `{"webhook":"http://u:hunter2@127.0.0.1:9/"}`, 400, "the URL holds a password"},
		{"PUT", "/api/v1/sinks/x", token, `{}`, 400, "give --postgres URL or --webhook URL"},
		{"PUT", "/api/v1/sinks/x", token, `{"postgres":"postgres://db/items","webhook":"http://127.0.0.1:9/"}`, 400, "not both"},
		{"PUT", "/api/v1/sinks/x", token, `{"webhook":"http://127.0.0.1:9/","table":"t"}`, 400, "--table is a --postgres setting"},
		{"PUT", "/api/v1/sinks/x", token, `{"postgres":"postgres://db/items","give_up":"1m"}`, 400, "webhook settings"},
		{"PUT", "/api/v1/sinks/x", token, `{"webhook":"ftp://127.0.0.1/"}`, 400, "--webhook: want an http:// or https:// URL"},
		{"PUT", "/api/v1/sinks/x", token, `{"webhook":"http://127.0.0.1:9/","spiders":["Bad Name"]}`, 400, "--spider"},
		{"PUT", "/api/v1/sinks/x", token, `{"webhook":"http://127.0.0.1:9/","batch_wait":"soon"}`, 400, "batch_wait"},
		{"PUT", "/api/v1/sinks/x", token, `{"webhook":"http://127.0.0.1:9/","colour":"red"}`, 400, "unknown field"},
		{"PUT", "/api/v1/sinks/Bad_Name", token, `{"webhook":"http://127.0.0.1:9/"}`, 400, "name"},
		{"GET", "/api/v1/sinks", "", "", 200, `[]`},
		{"PUT", "/api/v1/sinks/hook", token, hook, 201, `"target":"http://127.0.0.1:9/hook?token=${env:CRAWLMESH_TEST_HOOK_TOKEN}"`},
		{"PUT", "/api/v1/sinks/hook", token, hook, 409, "sink hook exists"},
		{"PUT", "/api/v1/sinks/db", token, `{"postgres":"postgres://app:${env:CRAWLMESH_TEST_PGPASS}@db:5432/items","table":"books"}`, 201,
			`"target":"postgres://app:${env:CRAWLMESH_TEST_PGPASS}@db:5432/items table books"`},
		{"DELETE", "/api/v1/sinks/nosuch", token, "", 404, "no sink nosuch"},
		{"DELETE", "/api/v1/sinks/status.hook", token, "", 404, "no sink"},
	} {
		code, body := do(tc.method, tc.path, tc.auth, tc.body)
		if code != tc.want || !strings.Contains(body, tc.substr) {
			t.Errorf("%s %s %s: %d %s; want %d with %q", tc.method, tc.path, tc.body, code, body, tc.want, tc.substr)
		}
	}

	// A status as the delivering master writes it: the listing shows it.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	kv, err := js.KeyValue(ctx, mesh.SinksBucket)
	if err != nil {
		t.Fatal(err)
	}
	st, _ := json.Marshal(sink.Status{Name: "hook", Node: "m1", State: sink.StateFailing, Delivered: 7, Failures: 3,
		LastError: "POST http://127.0.0.1:9/hook?token=${env:CRAWLMESH_TEST_HOOK_TOKEN}: connection refused", UpdatedAt: time.Now()})
	if _, err := kv.Put(ctx, sink.StatusPrefix+"hook", st); err != nil {
		t.Fatal(err)
	}
	code, body := do("GET", "/api/v1/sinks", "", "")
	var rows []sink.Row
	if err := json.Unmarshal([]byte(body), &rows); code != 200 || err != nil {
		t.Fatalf("GET /api/v1/sinks: %d %v %s", code, err, body)
	}
	if len(rows) != 2 || rows[0].Name != "db" || rows[0].State != sink.StateWaiting || rows[1].Name != "hook" {
		t.Fatalf("GET /api/v1/sinks: %s", body)
	}
	hr := rows[1]
	if hr.State != sink.StateFailing || hr.Status == nil || hr.Status.Delivered != 7 || hr.Status.Failures != 3 ||
		!strings.Contains(hr.Error, "connection refused") || hr.Type != sink.TypeWebhook ||
		len(hr.Spiders) != 1 || hr.BatchSize != 50 || time.Duration(hr.Webhook.GiveUp) != 30*time.Second {
		t.Errorf("sink hook listed as %s", body)
	}
	// The stored sink holds the reference, never its value.
	for _, k := range []string{"hook", "db"} {
		e, err := kv.Get(ctx, k)
		if err != nil || strings.Contains(string(e.Value()), secret) || !strings.Contains(string(e.Value()), "${env:") {
			t.Errorf("stored sink %s: %v %s", k, err, e.Value())
		}
	}
	if code, body := do("DELETE", "/api/v1/sinks/hook", token, ""); code != 200 || !strings.Contains(body, `"removed":"hook"`) {
		t.Errorf("DELETE /api/v1/sinks/hook: %d %s", code, body)
	}
	if _, body := do("GET", "/api/v1/sinks", "", ""); strings.Contains(body, `"name":"hook"`) {
		t.Errorf("hook still listed after DELETE: %s", body)
	}
}
