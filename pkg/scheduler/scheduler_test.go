package scheduler

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/crawlmesh/crawlmesh/pkg/mesh"
	"github.com/crawlmesh/crawlmesh/streams"
	"github.com/crawlmesh/crawlmesh/streams/streamstest"
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
	// "0 0 30 2 *" (30 February) matches no date: it made the leader look
	// for its next tick a million times each pass (found by review).
	for _, s := range []string{"", "* *", "@every", "61 * * * *", "0 0 30 2 *", "CRON_TZ=Asia/Tokyo 0 0 31 4 *"} {
		if _, err := Parse(s); err == nil {
			t.Errorf("Parse(%q) accepted", s)
		}
	}
}

// TestList: the schedules view lists spiders with a schedule only, with
// the next run and the last tick's crawl id as Run computes them.
func TestList(t *testing.T) {
	_, js := streamstest.Start(t, streams.Options{})
	kv := streamstest.Bucket(t, js, mesh.SpidersBucket)
	for name, extra := range map[string]string{"hourly": "schedule: \"@every 1h\"\n", "manual": ""} {
		y := "name: " + name + "\nstart_urls: [\"http://127.0.0.1:1/\"]\n" + extra
		if _, err := kv.Put(t.Context(), name, []byte(y)); err != nil {
			t.Fatal(err)
		}
	}
	s := New(kv, nil, nil, nil)
	got, err := s.List(t.Context(), time.Now())
	if err != nil || len(got) != 1 || got[0].Spider != "hourly" || got[0].TimeZone != "UTC" {
		t.Fatalf("List = %+v, %v; want hourly alone, in UTC", got, err)
	}
	// A schedule in its own zone says that zone; one stored before apply
	// refused it, that matches no date, says why it is ignored.
	for name, sched := range map[string]string{"tokyo": "CRON_TZ=Asia/Tokyo 0 3 * * *", "never": "0 0 30 2 *"} {
		y := "name: " + name + "\nstart_urls: [\"http://127.0.0.1:1/\"]\nschedule: \"" + sched + "\"\n"
		if _, err := kv.Put(t.Context(), name, []byte(y)); err != nil {
			t.Fatal(err)
		}
	}
	more, err := s.List(t.Context(), time.Now())
	if err != nil || len(more) != 3 {
		t.Fatalf("List = %+v, %v", more, err)
	}
	for _, e := range more {
		switch e.Spider {
		case "tokyo":
			if e.TimeZone != "Asia/Tokyo" || e.Error != "" {
				t.Errorf("tokyo: %+v, want time zone Asia/Tokyo", e)
			}
		case "never":
			if !strings.Contains(e.Error, "never fires") {
				t.Errorf("never: %+v, want the reason it is ignored", e)
			}
		}
	}
	for _, name := range []string{"tokyo", "never"} {
		if err := kv.Purge(t.Context(), name); err != nil {
			t.Fatal(err)
		}
	}
	applied := got[0].AppliedAt.Truncate(time.Second) // @every ticks fall on whole seconds
	if got[0].LastTick != nil || !got[0].NextRun.Equal(applied.Add(time.Hour)) {
		t.Errorf("just applied: %+v; want no tick yet, next run an hour after %v", got[0], applied)
	}
	got, _ = s.List(t.Context(), applied.Add(150*time.Minute))
	if e := got[0]; e.LastTick == nil || !e.LastTick.Equal(applied.Add(2*time.Hour)) ||
		e.LastCrawl != TickID("hourly", applied.Add(2*time.Hour)) || !e.NextRun.Equal(applied.Add(3*time.Hour)) {
		t.Errorf("150 min later: %+v; want last tick at 2h, next at 3h", e)
	}
}

// A stored schedule that never fires is warned of once, not at every
// pass of the scheduler (found by review: 5 lines a second, for ever);
// again if it changes.
func TestRefusedScheduleWarnedOnce(t *testing.T) {
	_, js := streamstest.Start(t, streams.Options{})
	kv := streamstest.Bucket(t, js, mesh.SpidersBucket)
	put := func(sched string) {
		y := "name: never\nstart_urls: [\"http://127.0.0.1:1/\"]\nschedule: \"" + sched + "\"\n"
		if _, err := kv.Put(t.Context(), "never", []byte(y)); err != nil {
			t.Fatal(err)
		}
	}
	put("0 0 30 2 *")
	var logs bytes.Buffer
	s := New(kv, nil, nil, slog.New(slog.NewTextHandler(&logs, nil)))
	entries := map[string]*entry{}
	for range 5 {
		s.refresh(t.Context(), entries)
	}
	if n := strings.Count(logs.String(), "bad schedule ignored"); n != 1 {
		t.Errorf("warned %d times over 5 passes, want once:\n%s", n, logs.String())
	}
	put("0 0 31 4 *")
	s.refresh(t.Context(), entries)
	s.refresh(t.Context(), entries)
	if n := strings.Count(logs.String(), "bad schedule ignored"); n != 2 {
		t.Errorf("warned %d times after the schedule changed, want 2", n)
	}
	if e := entries["never"]; e == nil || e.sched != nil || e.due(time.Now().Add(time.Hour)) != (time.Time{}) {
		t.Errorf("entry %+v: a refused schedule is kept without a schedule, never due", e)
	}
}
