package mesh

import (
	"encoding/json"
	"testing"
)

// BenchmarkTaskRoundTrip is the encode and decode every task costs.
func BenchmarkTaskRoundTrip(b *testing.B) {
	t := Task{ID: URLHash("http://example.com/a/b?c=d"), Crawl: "books-20261123060632-f916", Spider: "books",
		URL: "http://example.com/a/b?c=d", Depth: 3, Referrer: "http://example.com/a/"}
	b.ReportAllocs()
	for b.Loop() {
		buf, _ := json.Marshal(t)
		var out Task
		if err := json.Unmarshal(buf, &out); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkURLHash is the seen-set key of one URL.
func BenchmarkURLHash(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		_ = URLHash("http://example.com/catalogue/page-17.html")
	}
}
