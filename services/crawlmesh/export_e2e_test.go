package main

import (
	"encoding/csv"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/crawlmesh/crawlmesh/services/internal/harness"
)

// exportJS is a script spider whose items differ in their keys: a
// {name, price} per div.item and one {url, depth} a page, the item's url
// not the page's (the demo spider's field url is a book's link).
const exportJS = `function parse(page) {
  const items = page.css('div.item').map(e => ({
    name: e.css('.name')[0].text(),
    price: e.css('.price')[0].text(),
  }));
  items.push({url: page.url + '#self', depth: 'd' + page.depth});
  return {items, links: page.css('a.l').map(a => a.attr('href'))};
}
`

// TestExportCSVScriptSpider: a script spider's spec declares no fields;
// `results export --format csv` still has a column for each of its items'
// keys, the item's url as data.url next to the page's url, every header
// name unique, each row its item's values; the API's csv download is the
// same bytes.
func TestExportCSVScriptSpider(t *testing.T) {
	site := harness.NewSite(t, harness.SiteConfig{Pages: 20})
	m := harness.StartMesh(t, harness.MeshConfig{Workers: 1, HTTP: true})
	m.CLI.Apply(progSpec("jsexport", site, inlineScript(exportJS)))
	id := m.CLI.Start("jsexport")
	if st := m.WaitDone(id, time.Minute); st.Items == 0 {
		t.Fatalf("crawl %s: no items", id)
	}
	items := m.CLI.Export(id) // jsonl, in stream order as the csv rows
	out := m.CLI.Must("results", "export", id, "--format", "csv")

	recs, err := csv.NewReader(strings.NewReader(out)).ReadAll()
	if err != nil || len(recs) == 0 {
		t.Fatalf("csv export: %v\n%s", err, firstLines(out, 5))
	}
	header := recs[0]
	// Sorted by key (depth, name, price, url), then named.
	want := []string{"url", "spider", "crawl", "depth", "fetched_at", "data.depth", "name", "price", "data.url"}
	if !slices.Equal(header, want) {
		t.Fatalf("csv header %q, want %q", header, want)
	}
	if len(recs)-1 != len(items) {
		t.Fatalf("csv export: %d rows, jsonl %d items", len(recs)-1, len(items))
	}
	column := map[string]string{"depth": "data.depth", "url": "data.url", "name": "name", "price": "price"}
	kinds := map[string]int{}
	for i, it := range items {
		row := map[string]string{}
		for j, h := range header {
			row[h] = recs[i+1][j]
		}
		if row["url"] != it.URL || row["crawl"] != id || row["spider"] != "jsexport" {
			t.Fatalf("row %d: url %q crawl %q spider %q, want %q %q jsexport", i, row["url"], row["crawl"], row["spider"], it.URL, id)
		}
		for key, col := range column {
			if got, want := row[col], it.Text(key); got != want {
				t.Fatalf("row %d (%s) column %s: %q, want %q", i, it.URL, col, got, want)
			}
		}
		if _, ok := it.Data["url"]; ok {
			kinds["url"]++
			if row["data.url"] != row["url"]+"#self" {
				t.Errorf("row %d: data.url %q, want the page's url %q + #self", i, row["data.url"], row["url"])
			}
		} else if row["name"] != "" {
			kinds["name"]++
		}
	}
	if kinds["url"] == 0 || kinds["name"] == 0 {
		t.Fatalf("want rows of both key sets, got %v", kinds)
	}

	resp, err := http.Get("http://" + m.HTTP["m1"] + "/api/v1/crawls/" + id + "/export?format=csv")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK || string(body) != out {
		t.Errorf("API csv download: %d, %v, %d bytes; want 200 and the CLI's %d bytes\n%s", resp.StatusCode, err, len(body), len(out), firstLines(string(body), 3))
	}
}
