package faults

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/crawlmesh/crawlmesh/services/internal/harness"
)

// firstCrawlWithin is how soon after the processes start a crawl must
// start on a fresh cluster (issue 12's bound).
const firstCrawlWithin = 10 * time.Second

// startWhenReady applies spider and starts a crawl of it the way an
// operator's script would: trying again until the mesh takes it. It returns
// the crawl id and when it was taken.
func startWhenReady(t *testing.T, m *harness.Mesh, site *harness.Site, spider string, limit time.Duration) (string, time.Time) {
	t.Helper()
	m.CLI.Apply(site.Spec(spider))
	var id, last string
	harness.Eventually(t, limit, "crawl start "+spider, func() bool {
		out, errOut, code := m.CLI.Run("crawl", "start", spider)
		id, last = strings.TrimSpace(out), errOut
		return code == 0
	}, func() string { return last })
	return id, time.Now()
}

// TestColdStartTogether: a fresh 3-server cluster, then every master and
// worker at the same moment — five times with 2 masters and five with 3.
// Each time a crawl starts within 10 s of the processes' start and
// completes with the exact item set.
func TestColdStartTogether(t *testing.T) {
	if testing.Short() {
		t.Skip("starts 10 clusters")
	}
	var mu sync.Mutex
	times := map[int][]time.Duration{}
	for _, masters := range []int{2, 3} {
		for run := range 5 {
			t.Run(fmt.Sprintf("masters=%d/run=%d", masters, run+1), func(t *testing.T) {
				took := coldStart(t, masters, false)
				mu.Lock()
				times[masters] = append(times[masters], took)
				mu.Unlock()
			})
		}
	}
	for _, masters := range []int{2, 3} {
		logSpread(t, fmt.Sprintf("%d masters", masters), times[masters])
	}
}

// TestStartBeforeMetaLeader: masters and workers started with the NATS
// servers, before the cluster has elected its meta leader (and so before
// any asset can exist), come up as soon as JetStream answers: a crawl
// starts within 10 s of that moment.
func TestStartBeforeMetaLeader(t *testing.T) {
	if testing.Short() {
		t.Skip("starts 3 clusters")
	}
	var times []time.Duration
	for run := range 3 {
		t.Run(fmt.Sprintf("run=%d", run+1), func(t *testing.T) {
			times = append(times, coldStart(t, 2, true))
		})
	}
	logSpread(t, "from JetStream answering", times)
}

// coldStart starts a fresh cluster and the mesh's processes together,
// then a crawl as soon as the mesh takes one; it checks the crawl's items
// and returns how long the crawl took to start, counted from the
// processes' start, or with beforeMeta (processes started before the
// cluster's meta leader) from JetStream's first answer.
func coldStart(t *testing.T, masters int, beforeMeta bool) time.Duration {
	m := harness.StartMesh(t, harness.MeshConfig{NATS: 3, Mode: harness.Processes, Masters: masters, Workers: 2,
		Together: true, TogetherBeforeMeta: beforeMeta})
	site := harness.NewSite(t, harness.SiteConfig{Pages: 40})
	truth := site.Truth(m.Cfg.MaxAttempts)
	var jsUp time.Time
	if beforeMeta {
		doctorDuringStart(t, m)
		jsUp = m.Cluster.WaitAnswering(30 * time.Second)
		t.Logf("JetStream answered %v after the processes started", jsUp.Sub(m.Started).Round(time.Millisecond))
	}
	id, at := startWhenReady(t, m, site, "cold", 30*time.Second)
	from, since := m.Started, "the processes' start"
	if beforeMeta {
		from, since = jsUp, "JetStream's first answer"
	}
	took := at.Sub(from)
	t.Logf("first crawl started %v after %s", took.Round(time.Millisecond), since)
	if took > firstCrawlWithin {
		t.Errorf("first crawl started %v after %s, want within %v", took.Round(time.Millisecond), since, firstCrawlWithin)
	}
	m.WaitDone(id, 60*time.Second)
	harness.CheckItems(t, m.CLI.Export(id), truth.Items)
	return took
}

func logSpread(t *testing.T, what string, d []time.Duration) {
	if len(d) == 0 {
		return
	}
	slices.Sort(d)
	t.Logf("%s: time to first crawl over %d starts: min %v, median %v, max %v", what, len(d),
		d[0].Round(time.Millisecond), d[len(d)/2].Round(time.Millisecond), d[len(d)-1].Round(time.Millisecond))
}

// waitingSays are what doctor reports while the mesh comes up: each names
// what it waits for.
var waitingSays = []string{
	"JetStream does not answer yet",
	"a starting master creates them",
	"is creating the mesh's streams and buckets",
	"finished creating the mesh's streams and buckets",
	"is setting up the mesh's streams and buckets",
	"elect one within a lease",
	"no worker is online yet",
	"its leader is being elected",
}

// doctorDuringStart runs `crawlmesh doctor` from the processes' start until
// it passes: every report before that must say what the mesh waits for,
// never that no master runs.
func doctorDuringStart(t *testing.T, m *harness.Mesh) {
	t.Helper()
	var said []string
	for try := 0; try < 60; try++ {
		out, errOut, code := m.CLI.Run("doctor", "--timeout", "1s")
		if code == 0 {
			t.Logf("doctor passed after %d reports during the start: %q", try, said)
			return
		}
		var why string
		for _, line := range strings.Split(out+errOut, "\n") {
			if strings.HasPrefix(line, "FAIL") {
				why += strings.TrimSpace(line) + "; "
			}
		}
		if strings.Contains(out, "no master is online") {
			t.Errorf("doctor during the start says no master runs: %s", out)
		}
		if !slices.ContainsFunc(waitingSays, func(w string) bool { return strings.Contains(out, w) }) {
			t.Errorf("doctor during the start does not say what the mesh waits for:\n%s%s", out, errOut)
		}
		said = append(said, why)
		time.Sleep(200 * time.Millisecond)
	}
	t.Errorf("doctor did not pass within 60 reports; last: %v", said[len(said)-1:])
}
