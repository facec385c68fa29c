package httpapi

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/crawlmesh/crawlmesh/pkg/clusterview"
)

// The token check and routing come before any NATS call, so these run
// without a server; the end-to-end test in services/crawlmesh drives the
// API against a real mesh.
func TestAuthorisation(t *testing.T) {
	nodes := func() []clusterview.Node { return []clusterview.Node{{ID: "w1", Role: "worker", Online: true}} }
	open := Handler(Config{Nodes: nodes})
	locked := Handler(Config{Token: "0123456789abcdef", Nodes: nodes})
	for _, tc := range []struct {
		h              http.Handler
		method, path   string
		auth           string
		want           int
		wantBodySubstr string
	}{
		{open, "GET", "/api/v1/nodes", "", 200, `"id":"w1"`},
		{locked, "GET", "/api/v1/nodes", "", 200, `"id":"w1"`},
		{open, "POST", "/api/v1/crawls", "Bearer 0123456789abcdef", 403, "--api-token-file"},
		{open, "POST", "/api/v1/nodes/w1/pause", "", 403, "disabled"},
		{locked, "POST", "/api/v1/crawls", "", 401, "Bearer"},
		{locked, "POST", "/api/v1/crawls", "Bearer 0123456789abcdeF", 401, "wrong token"},
		{locked, "POST", "/api/v1/crawls", "Basic 0123456789abcdef", 401, "wrong token"},
		{locked, "POST", "/api/v1/crawls", "bearer 0123456789abcdef", 400, "body"}, // the scheme in any case
		{locked, "POST", "/api/v1/crawls", "BEARER  0123456789abcdef", 400, "body"},
		{locked, "POST", "/api/v1/crawls", "Bearer0123456789abcdef", 401, "wrong token"},
		{locked, "POST", "/api/v1/crawls/c1/cancel", "", 401, ""},
		{locked, "DELETE", "/api/v1/nodes", "Bearer 0123456789abcdef", 404, "no route DELETE"},
		{locked, "GET", "/api/v1/nope", "", 404, "no route"},
		{locked, "POST", "/api/v1/crawls", "Bearer 0123456789abcdef", 400, "body"}, // empty body
		{locked, "POST", "/api/v1/crawls/c1/deadletters/3/requeue", "", 401, "Bearer"},
		{locked, "POST", "/api/v1/crawls/c1/deadletters/requeue", "", 401, "Bearer"},
		{open, "POST", "/api/v1/crawls/c1/deadletters/requeue", "Bearer 0123456789abcdef", 403, "disabled"},
		{locked, "POST", "/api/v1/crawls/c1/deadletters/x/requeue", "Bearer 0123456789abcdef", 400, "seq"},
		{locked, "POST", "/api/v1/crawls/c1/deadletters/0/requeue", "Bearer 0123456789abcdef", 400, "seq"},
		{locked, "POST", "/api/v1/crawls/c.1/deadletters/requeue", "Bearer 0123456789abcdef", 400, "crawl"},
		{locked, "GET", "/api/v1/schedules", "", 404, "no scheduler"},
	} {
		req := httptest.NewRequest(tc.method, tc.path, strings.NewReader(""))
		if tc.auth != "" {
			req.Header.Set("Authorization", tc.auth)
		}
		rec := httptest.NewRecorder()
		tc.h.ServeHTTP(rec, req)
		if rec.Code != tc.want || !strings.Contains(rec.Body.String(), tc.wantBodySubstr) {
			t.Errorf("%s %s (auth %q): %d %s, want %d containing %q", tc.method, tc.path, tc.auth, rec.Code, rec.Body, tc.want, tc.wantBodySubstr)
		}
		if rec.Code == 401 && rec.Header().Get("WWW-Authenticate") == "" {
			t.Errorf("%s %s: 401 without WWW-Authenticate", tc.method, tc.path)
		}
	}
}

// scale and set-concurrency need their n: a missing one must not read as 0
// (scale 0 would stop every worker of an agent). Refused before any NATS
// call.
func TestNodeCommandNeedsN(t *testing.T) {
	h := Handler(Config{Token: "0123456789abcdef", Nodes: func() []clusterview.Node { return nil }})
	for _, tc := range []struct{ path, body, want string }{
		{"/api/v1/nodes/a1/scale", "{}", "N} in the body"},
		{"/api/v1/nodes/w1/set-concurrency", "{}", "N} in the body"},
		{"/api/v1/nodes/all/scale", `{"n":2}`, "not all"},
		{"/api/v1/nodes/a1/scale", `{"n":999}`, "want 0..256"},
	} {
		req := httptest.NewRequest("POST", tc.path, strings.NewReader(tc.body))
		req.Header.Set("Authorization", "Bearer 0123456789abcdef")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), tc.want) {
			t.Errorf("POST %s %s: %d %s, want 400 containing %q", tc.path, tc.body, rec.Code, rec.Body, tc.want)
		}
	}
}
