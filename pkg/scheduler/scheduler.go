// Package scheduler starts crawls of spiders that have a `schedule` (cron
// syntax or "@every D"), run by the leading master only.
//
// Each tick fires at most once across failovers and restarts: the crawl of
// a tick has a deterministic id (spider and tick time), and starting it
// creates that id in KV bucket crawls, which succeeds once. A master that
// crashed after creating it but before seeding leaves an unseeded crawl
// that crawlctl seeds again, so a fired tick also runs.
//
// Ticks are computed from the time the spider was applied (the KV entry's
// server timestamp), in an explicit time zone (default UTC), so every master
// computes the same ticks. Missed ticks — while no master led — follow the
// "fire once" policy: a new leader starts the most recent missed tick and
// skips the older ones.
package scheduler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/robfig/cron/v3"

	"github.com/crawlmesh/crawlmesh/pkg/spec"
)

// Starter starts the crawl of one tick; it returns ErrFired if that tick's
// crawl exists already.
type Starter func(ctx context.Context, spider, id string) error

// ErrFired means the tick's crawl was started before.
var ErrFired = errors.New("scheduler: tick already fired")

// Parse parses a schedule: 5-field cron, @every D, or @hourly and friends.
func Parse(s string) (cron.Schedule, error) {
	sched, err := cron.ParseStandard(s)
	if err != nil {
		return nil, fmt.Errorf("schedule %q: %w", s, err)
	}
	if sched.Next(time.Now()).IsZero() { // stored before apply refused it
		return nil, fmt.Errorf("schedule %q: no date matches it (such as 30 February), so it never fires", s)
	}
	return sched, nil
}

// Zone is the time zone schedules without their own are evaluated in.
func (s *Scheduler) Zone() string { return s.loc.String() }

// zoneOf is the time zone a schedule's ticks are in: its own CRON_TZ= or
// TZ= prefix, else the scheduler's.
func zoneOf(raw string, loc *time.Location) string {
	for _, p := range []string{"CRON_TZ=", "TZ="} {
		if rest, ok := strings.CutPrefix(raw, p); ok {
			if name, _, ok := strings.Cut(rest, " "); ok {
				return name
			}
		}
	}
	return loc.String()
}

// TickID is the crawl id of spider's tick at t.
func TickID(spider string, t time.Time) string {
	return spider + "-" + t.UTC().Format("20060102150405") + "-sched"
}

// Scheduler fires ticks.
type Scheduler struct {
	spiders jetstream.KeyValue
	start   Starter
	loc     *time.Location
	log     *slog.Logger
	now     func() time.Time
}

// New returns a scheduler over bucket spiders, evaluating cron in loc.
func New(spiders jetstream.KeyValue, start Starter, loc *time.Location, log *slog.Logger) *Scheduler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if loc == nil {
		loc = time.UTC
	}
	return &Scheduler{spiders: spiders, start: start, loc: loc, log: log.With("component", "scheduler"), now: time.Now}
}

type entry struct {
	// sched is nil for a schedule that does not parse: kept as an entry
	// so that it is warned of once, not at every pass (found by review:
	// 5 lines a second).
	sched   cron.Schedule
	raw     string
	applied time.Time
	last    time.Time // last tick considered (fired or skipped)
}

// Run fires ticks until ctx is done (the leadership context).
func (s *Scheduler) Run(ctx context.Context) error {
	entries := map[string]*entry{}
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for {
		s.refresh(ctx, entries)
		now := s.now().In(s.loc)
		for name, e := range entries {
			due := e.due(now)
			if due.IsZero() {
				continue
			}
			id := TickID(name, due)
			switch err := s.start(ctx, name, id); {
			case err == nil:
				s.log.Info("scheduled crawl started", "crawl", id, "tick", due.Format(time.RFC3339))
			case errors.Is(err, ErrFired):
			case ctx.Err() != nil:
				return nil
			default:
				s.log.Warn("scheduled crawl not started, retrying", "crawl", id, "err", err)
				e.last = due.Add(-time.Nanosecond) // try this tick again
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// due returns the most recent tick not yet considered, or zero; older
// missed ticks are skipped ("fire once").
func (e *entry) due(now time.Time) time.Time {
	var last time.Time
	if e.sched == nil {
		return last
	}
	// A zero time is "never" (no date matches): not a tick, and no reason
	// to look a million times more.
	for t, n := e.sched.Next(e.last), 0; !t.IsZero() && !t.After(now) && n < 1_000_000; t, n = e.sched.Next(t), n+1 {
		last = t
	}
	if last.IsZero() {
		return last
	}
	e.last = last
	return last
}

// scheduled is one spider's schedule as stored: its spec's `schedule`
// and the time the spider was applied (the KV entry's server timestamp).
type scheduled struct {
	raw     string
	applied time.Time
}

// read reads the spiders that have a schedule (a handful of keys: cheap).
func (s *Scheduler) read(ctx context.Context) (map[string]scheduled, error) {
	keys, err := s.spiders.Keys(ctx)
	if errors.Is(err, jetstream.ErrNoKeysFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	out := map[string]scheduled{}
	for _, k := range keys {
		en, err := s.spiders.Get(ctx, k)
		if err != nil {
			continue
		}
		sp, err := spec.Parse(en.Value())
		if err != nil || strings.TrimSpace(sp.Schedule) == "" {
			continue
		}
		out[k] = scheduled{raw: sp.Schedule, applied: en.Created().In(s.loc)}
	}
	return out, nil
}

// refresh brings entries up to date with the spiders' schedules.
func (s *Scheduler) refresh(ctx context.Context, entries map[string]*entry) {
	found, err := s.read(ctx)
	if err != nil {
		return
	}
	for k, sc := range found {
		if e := entries[k]; e != nil && e.raw == sc.raw && e.applied.Equal(sc.applied) {
			continue
		}
		sched, err := Parse(sc.raw)
		if err != nil {
			s.log.Warn("bad schedule ignored", "spider", k, "err", err)
			sched = nil // the entry stands for the warning
		}
		// Ticks count from the apply time: the same on every master.
		entries[k] = &entry{sched: sched, raw: sc.raw, applied: sc.applied, last: sc.applied}
	}
	for k := range entries {
		if _, ok := found[k]; !ok {
			delete(entries, k)
		}
	}
}

// Schedule is one spider's schedule as the leader fires it: the
// schedules view of the console.
type Schedule struct {
	Spider    string    `json:"spider"`
	Schedule  string    `json:"schedule"`
	TimeZone  string    `json:"time_zone"`
	AppliedAt time.Time `json:"applied_at"` // ticks count from here
	// NextRun is the next tick; zero when the schedule does not parse.
	NextRun time.Time `json:"next_run,omitzero"`
	// LastTick is the most recent tick, and LastCrawl the id of its crawl
	// (crawls of ticks missed while no master led are skipped: see the
	// package doc).
	LastTick  *time.Time `json:"last_tick,omitempty"`
	LastCrawl string     `json:"last_crawl,omitempty"`
	Error     string     `json:"error,omitempty"` // why the schedule is ignored
}

// List returns every spider's schedule at now, by spider name, computed
// as Run computes ticks.
func (s *Scheduler) List(ctx context.Context, now time.Time) ([]Schedule, error) {
	found, err := s.read(ctx)
	if err != nil {
		return nil, fmt.Errorf("read spiders: %w", err)
	}
	out := make([]Schedule, 0, len(found))
	now = now.In(s.loc)
	for name, sc := range found {
		e := Schedule{Spider: name, Schedule: sc.raw, TimeZone: zoneOf(sc.raw, s.loc), AppliedAt: sc.applied}
		sched, err := Parse(sc.raw)
		if err != nil {
			e.Error = err.Error()
			out = append(out, e)
			continue
		}
		en := &entry{sched: sched, last: sc.applied}
		if last := en.due(now); !last.IsZero() {
			e.LastTick, e.LastCrawl = &last, TickID(name, last)
		}
		e.NextRun = sched.Next(en.last) // the tick after the last, as Run goes
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Spider < out[j].Spider })
	return out, nil
}
