package extract_test

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/crawlmesh/crawlmesh/pkg/extract"
)

const apiPage = `{
  "products": [
    {"name": "Tea", "price": 12.50, "tags": ["a", "b", null], "stock": null, "id": 12345678901234567890,
     "dims": {"w": 1, "h": [2, 3.0]}, "ok": true, "url": "/p/1?sid=9"},
    {"name": "Cup", "price": 7, "tags": [], "stock": 3, "ok": false},
    {"price": 1e3},
    null,
    "odd"
  ],
  "next": "?page=2&utm_source=feed",
  "links": ["/p/1", "/p/1?sid=9", "mailto:x@example.com", 7, {"u": "/no"}, "https://other.example/"]
}`

const apiURL = "https://example.com/api/items?page=1"

func TestJSONItems(t *testing.T) {
	r := rules(t, `
links: {strip_query: ["utm_*", sid]}
items:
  - json: ".products[]"
    fields:
      name: {json: .name}
      price: {json: .price}
      tags: {json: ".tags[]", all: true}
      stock: {json: .stock}
      id: {json: .id}
      dims: {json: .dims}
      ok: {json: .ok}
      url: {json: .url}
      cents: {json: ".price | tostring", regex: "\\.([0-9]+)"}
      wrong: {json: ".name.first"}
`)
	res := page(t, r, apiURL, "application/json; charset=utf-8", apiPage)
	want := []map[string]any{
		{"name": "Tea", "price": "12.50", "tags": []string{"a", "b"}, "id": "12345678901234567890",
			"dims": `{"h":[2,3.0],"w":1}`, "ok": "true", "url": "/p/1?sid=9", "cents": "50"},
		{"name": "Cup", "price": "7", "tags": []string{}, "stock": "3", "ok": "false"},
		{"price": "1e3", "tags": []string{}},
		// A null element is no element; "odd" is one, but .name on a
		// string is a jq error: no output, so only the list is there.
		{"tags": []string{}},
	}
	if !reflect.DeepEqual(res.Items, want) {
		t.Errorf("items:\n got %#v\nwant %#v", res.Items, want)
	}
}

// With all: true every output is one element: .tags yields one output
// (the array, as JSON text), .tags[] one per tag.
func TestJSONAllOutputs(t *testing.T) {
	r := rules(t, `
items:
  - json: ".products[0]"
    fields:
      tags: {json: ".tags", all: true}
      each: {json: ".tags[]", all: true}
      name: {json: ".name", all: true}
      none: {json: ".stock", all: true}
`)
	res := page(t, r, apiURL, "application/json", apiPage)
	want := []map[string]any{{"tags": []string{`["a","b",null]`}, "each": []string{"a", "b"}, "name": []string{"Tea"}, "none": []string{}}}
	if !reflect.DeepEqual(res.Items, want) {
		t.Errorf("items:\n got %#v\nwant %#v", res.Items, want)
	}
}

func TestJSONRequiredAndWholeElement(t *testing.T) {
	r := rules(t, `
items:
  - json: ".products[]"
    fields:
      name: {json: .name}
      all: {}
    required: [name]
`)
	res := page(t, r, apiURL, "application/json", apiPage)
	if len(res.Items) != 2 || res.Incomplete != 2 {
		t.Fatalf("%d items, %d incomplete; want 2 and 2 (no name: {\"price\":1e3} and \"odd\")", len(res.Items), res.Incomplete)
	}
	if got := res.Items[1]["all"]; got != `{"name":"Cup","ok":false,"price":7,"stock":3,"tags":[]}` {
		t.Errorf("whole element = %v", got)
	}
}

func TestJSONLinks(t *testing.T) {
	r := rules(t, `links: {json: [.next, ".links[]", ".missing.deeper", ".products[].url"], strip_query: ["utm_*", sid]}`+"\n")
	res := page(t, r, apiURL, "application/vnd.api+json", apiPage)
	want := []string{"https://example.com/api/items?page=2", "https://example.com/p/1"}
	if !reflect.DeepEqual(res.Links, want) {
		t.Errorf("links:\n got %q\nwant %q", res.Links, want)
	}
	// The last page of a paged API has no next.
	res = page(t, r, apiURL, "application/json", `{"next": null, "links": []}`)
	if len(res.Links) != 0 {
		t.Errorf("last page links = %q", res.Links)
	}
}

func TestJSONPagedAPI(t *testing.T) {
	r := rules(t, `
links: {json: [.next]}
items: [{json: ".data[]", fields: {id: {json: .id}}}]
`)
	body := `{"data": [{"id": 1}, {"id": 2}], "next": "https://example.com/api?cursor=abc"}`
	res := page(t, r, "https://example.com/api", "application/json", body)
	if !reflect.DeepEqual(res.Links, []string{"https://example.com/api?cursor=abc"}) || len(res.Items) != 2 {
		t.Errorf("result = %+v", res)
	}
}

func TestJSONKinds(t *testing.T) {
	r := rules(t, `
follow: [a]
items:
  - json: ".[]"
    fields: {v: {}}
  - selector: p
    fields: {v: {}}
`)
	// HTML rules never read JSON, and JSON rules never read HTML.
	res := page(t, r, apiURL, "application/json", `[1, "two"]`)
	if len(res.Items) != 2 || res.Items[0]["v"] != "1" || res.Items[1]["v"] != "two" || res.Links != nil {
		t.Errorf("JSON page: %+v", res)
	}
	res = page(t, r, apiURL, "text/html", `<p>para</p><a href="/a">a</a>`)
	if len(res.Items) != 1 || res.Items[0]["v"] != "para" || len(res.Links) != 1 {
		t.Errorf("HTML page: %+v", res)
	}
	// A spec with no JSON rules does not even parse a JSON page.
	old := rules(t, "follow: [a]\n")
	if res, err := old.Page(mustURL(t, apiURL), "application/json", []byte("not json")); err != nil || res.Links != nil {
		t.Errorf("old spec on a JSON page: %+v, %v", res, err)
	}
}

func TestJSONErrors(t *testing.T) {
	r := rules(t, "links: {json: [.next]}\n")
	for _, body := range []string{"", "{", `{"a":1} {"b":2}`, "<html></html>", `{"a":1}x`} {
		if _, err := r.Page(mustURL(t, apiURL), "application/json", []byte(body)); err == nil || !strings.Contains(err.Error(), "JSON") {
			t.Errorf("body %q: err = %v, want a JSON parse error", body, err)
		}
	}
	if res, err := r.Page(mustURL(t, apiURL), "application/json", []byte("\xef\xbb\xbf{\"next\": \"/n\"}  \n")); err != nil || len(res.Links) != 1 {
		t.Errorf("BOM and trailing space: %+v, %v", res, err)
	}
}

func TestJSONTimeout(t *testing.T) {
	defer extract.SetJQTimeout(50 * time.Millisecond)()
	r := rules(t, "links: {json: ['last(range(1e12))']}\n")
	start := time.Now()
	_, err := r.Page(mustURL(t, apiURL), "application/json", []byte("{}"))
	if err == nil || !strings.Contains(err.Error(), "jq ran over") {
		t.Errorf("err = %v, want the jq time limit", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %v", d)
	}
}

func TestIsJSON(t *testing.T) {
	for ct, want := range map[string]bool{
		"application/json":                    true,
		"application/json; charset=utf-8":     true,
		"Application/JSON":                    true,
		"application/ld+json":                 true,
		"application/vnd.api+json; v=2":       true,
		"application/problem+json; charset=x": true,
		"text/json":                           true, // older servers' name for it
		"text/html":                           false,
		"":                                    false,
		"application/jsonp":                   false,
		"text/plain; json":                    false,
		"application/xml":                     false,
	} {
		if got := extract.IsJSON(ct); got != want {
			t.Errorf("IsJSON(%q) = %v, want %v", ct, got, want)
		}
	}
}

// A jq error leaves the value missing, as a selector matching nothing
// does, and says so in the page's warnings: a spec author whose field
// never appears learns why (found by review).
func TestJSONWarnings(t *testing.T) {
	r := rules(t, `
links: {json: [".next | ascii_downcase", ".links[] | halt"]}
items:
  - json: ".products[]"
    fields:
      name: {json: .name}
      lower: {json: ".price | ascii_downcase"}
`)
	res := page(t, r, apiURL, "application/json", apiPage)
	if len(res.Items) != 4 || res.Items[0]["name"] != "Tea" || res.Items[0]["lower"] != nil {
		t.Errorf("items = %v, want 4, the first named Tea, none with lower", res.Items)
	}
	// One warning per expression and page, the first element's error.
	want := []string{
		"items[0].fields.lower: ascii_downcase cannot be applied to: number (12.50)",
		`items[0].fields.name: expected an object but got: string ("odd")`,
	}
	if !reflect.DeepEqual(res.Warnings, want) {
		t.Errorf("warnings = %q, want %q", res.Warnings, want)
	}

	r = rules(t, `
links: {json: [".next | ascii_downcase", ".links[] | halt", ".next | 1 + ."]}
items:
  - json: ".products[] | .x.y"
    fields:
      k: {json: .}
  - json: ".products[]"
    fields:
      a: {json: ".a | error(\"bad a\")"}
`)
	res = page(t, r, apiURL, "application/json", apiPage)
	want = []string{"items[0].json: ", "items[1].fields.a: ", "links.json[2]: "}
	if len(res.Warnings) != 3 {
		t.Fatalf("warnings = %q, want 3 (the cap)", res.Warnings)
	}
	for i, p := range want {
		if !strings.HasPrefix(res.Warnings[i], p) {
			t.Errorf("warning %d = %q, want it to start %q", i, res.Warnings[i], p)
		}
	}
	if !strings.Contains(res.Warnings[1], "bad a") {
		t.Errorf("warning = %q, want the expression's own error text", res.Warnings[1])
	}
	for _, w := range res.Warnings {
		if strings.Contains(w, "halt") {
			t.Errorf("warning %q: a bare halt is a stop, not a mistake", w)
		}
	}
}
