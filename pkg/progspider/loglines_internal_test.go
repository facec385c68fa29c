package progspider

import (
	"strings"
	"testing"
)

// A crawl's program log lines are all logged up to logAllLines on a
// worker, then one in logEveryLine, saying so; another crawl and a crawl
// that ended and came back start afresh.
func TestProgramLogLinesSampled(t *testing.T) {
	got := map[string][]string{}
	r := New(Config{Stderr: func(crawl, spider, line string) { got[crawl] = append(got[crawl], line) }})
	for range logAllLines + 3*logEveryLine {
		r.stderr("c1", "s", "noise")
	}
	for range 5 {
		r.stderr("c2", "s", "other")
	}
	if n := len(got["c1"]); n != logAllLines+3 {
		t.Fatalf("c1: %d lines logged, want %d", n, logAllLines+3)
	}
	if last := got["c1"][len(got["c1"])-1]; !strings.HasPrefix(last, "noise (one line of 100: past 10000 lines") {
		t.Errorf("a sampled line reads %q", last)
	}
	if len(got["c2"]) != 5 {
		t.Errorf("c2: %d lines, want its 5", len(got["c2"]))
	}
	r.EndCrawl("c1")
	r.stderr("c1", "s", "again")
	if last := got["c1"][len(got["c1"])-1]; last != "again" {
		t.Errorf("after the crawl ended, a line reads %q", last)
	}
}
