package scheduler

import (
	"testing"
	"time"
)

// TestDueFiresOnlyLatestMissedTick is the "fire once" policy: after a gap
// only the most recent tick is due, then ticks come one at a time.
func TestDueFiresOnlyLatestMissedTick(t *testing.T) {
	sched, err := Parse("@every 1s")
	if err != nil {
		t.Fatal(err)
	}
	applied := time.Date(2026, 11, 23, 7, 0, 0, 0, time.UTC)
	e := &entry{sched: sched, last: applied}
	if got := e.due(applied.Add(5500 * time.Millisecond)); !got.Equal(applied.Add(5 * time.Second)) {
		t.Fatalf("after a 5.5s gap due %v, want the 5s tick only", got)
	}
	if got := e.due(applied.Add(5900 * time.Millisecond)); !got.IsZero() {
		t.Fatalf("nothing is due before the next tick, got %v", got)
	}
	if got := e.due(applied.Add(6 * time.Second)); !got.Equal(applied.Add(6 * time.Second)) {
		t.Fatalf("due %v, want the 6s tick", got)
	}
}

func TestCronInZone(t *testing.T) {
	sched, err := Parse("0 6 * * *")
	if err != nil {
		t.Fatal(err)
	}
	tokyo, err := time.LoadLocation("Asia/Tokyo")
	if err != nil {
		t.Skip("no tz database:", err)
	}
	from := time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC).In(tokyo) // 09:00 in Tokyo
	next := sched.Next(from)
	if want := time.Date(2026, 11, 24, 6, 0, 0, 0, tokyo); !next.Equal(want) {
		t.Errorf("next 06:00 in Tokyo after %v = %v, want %v", from, next, want)
	}
	if TickID("books", next) != "books-20261123210000-sched" {
		t.Errorf("tick id %q", TickID("books", next))
	}
}

func TestParseRejects(t *testing.T) {
	for _, s := range []string{"", "* *", "@every", "61 * * * *"} {
		if _, err := Parse(s); err == nil {
			t.Errorf("Parse(%q) accepted", s)
		}
	}
}
