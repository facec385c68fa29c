package extract_test

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/crawlmesh/crawlmesh/pkg/extract"
	"github.com/crawlmesh/crawlmesh/pkg/spec"
)

// rules compiles a spec made of a fixed head and src.
func rules(t testing.TB, src string) *extract.Rules {
	t.Helper()
	s, err := spec.Parse([]byte("name: t\nstart_urls: [https://example.com/]\nallowed_domains: [example.com]\n" + src))
	if err != nil {
		t.Fatalf("spec: %v", err)
	}
	r, err := extract.Compile(s)
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	return r
}

func mustURL(t testing.TB, raw string) *url.URL {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func page(t testing.TB, r *extract.Rules, rawURL, contentType, body string) extract.Result {
	t.Helper()
	res, err := r.Page(mustURL(t, rawURL), contentType, []byte(body))
	if err != nil {
		t.Fatalf("Page(%s): %v", rawURL, err)
	}
	return res
}

func specOf(t testing.TB, src string) *spec.Spec {
	t.Helper()
	s, err := spec.Parse([]byte("name: t\nstart_urls: [https://example.com/]\nallowed_domains: [example.com]\n" + src + "\n"))
	if err != nil {
		t.Fatalf("spec: %v", err)
	}
	return s
}

func asAny(items []map[string]string) []map[string]any {
	var out []map[string]any
	for _, it := range items {
		m := make(map[string]any, len(it))
		for k, v := range it {
			m[k] = v
		}
		out = append(out, m)
	}
	return out
}

// stripNofollow removes rel attributes, where the old and new meanings
// differ.
func stripNofollow(s string) string {
	return strings.NewReplacer(`rel="nofollow"`, "", `rel="external NoFollow"`, "").Replace(s)
}

func newRecorder() *httptest.ResponseRecorder { return httptest.NewRecorder() }

func httpGet(path string) *http.Request { return httptest.NewRequest(http.MethodGet, path, nil) }
