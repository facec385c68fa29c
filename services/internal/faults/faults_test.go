package faults

import (
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/crawlmesh/crawlmesh/pkg/crawlctl"
	"github.com/crawlmesh/crawlmesh/pkg/mesh"
	"github.com/crawlmesh/crawlmesh/services/internal/harness"
)

var outcomes struct {
	mu   sync.Mutex
	rows []harness.Outcome
}

func record(o harness.Outcome) {
	outcomes.mu.Lock()
	defer outcomes.mu.Unlock()
	outcomes.rows = append(outcomes.rows, o)
}

func TestMain(m *testing.M) {
	code := harness.Main(m)
	if len(outcomes.rows) > 0 && testing.Verbose() {
		fmt.Println("| fault | survived | items lost/doubled | recovery | note |")
		fmt.Println("|---|---|---|---|---|")
		for _, o := range outcomes.rows {
			fmt.Println(o.String())
		}
	}
	os.Exit(code)
}

// crawl is one crawl of a site on a mesh, with its ground truth.
type crawl struct {
	t     *testing.T
	m     *harness.Mesh
	site  *harness.Site
	truth harness.Truth
	id    string
	pages int64 // pages the whole crawl does (ok, failed or dead)
}

func startCrawl(t *testing.T, m *harness.Mesh, site *harness.Site, spider string) *crawl {
	t.Helper()
	spec := site.Spec(spider)
	if m.Cfg.Partitions > 1 {
		// The site is one host: spread it over every partition by URL.
		spec = strings.TrimRight(spec, "\n") + "\npartition_by: url\n"
	}
	m.CLI.Apply(spec)
	c := &crawl{t: t, m: m, site: site, truth: site.Truth(m.Cfg.MaxAttempts)}
	c.pages = int64(len(c.truth.Items) + len(c.truth.Dead))
	c.id = m.CLI.Start(spider)
	return c
}

// done counts the pages finished one way or another.
func done(st crawlctl.Status) int64 { return st.PagesOK + st.PagesFailed + st.Dead }

// midCrawl waits until n pages are done and checks the crawl still runs,
// so the fault that follows lands mid-crawl.
func (c *crawl) midCrawl(n int64) crawlctl.Status {
	c.t.Helper()
	st := c.m.WaitPages(c.id, n, 60*time.Second)
	if st.State != mesh.CrawlRunning {
		c.t.Fatalf("crawl %s already %s after %d pages: make the site slower", c.id, st.State, done(st))
	}
	return st
}

// progressAfter waits until the crawl has done more pages than before plus
// what the workers could hold in flight when the fault hit (those may
// complete without the mesh having recovered), and returns the time since
// t0: the recovery time.
func (c *crawl) progressAfter(before int64, t0 time.Time, timeout time.Duration) time.Duration {
	c.t.Helper()
	target := min(before+int64(c.m.Slots())+5, c.pages)
	c.m.WaitPages(c.id, target, timeout)
	return time.Since(t0)
}

// finish waits for completion and checks the exact item set and dead
// letters; it returns the item diff.
func (c *crawl) finish(timeout time.Duration) (harness.Diff, crawlctl.Status) {
	c.t.Helper()
	t0 := time.Now()
	st := c.m.WaitDone(c.id, timeout)
	c.t.Logf("crawl %s completed %v after the wait began", c.id, time.Since(t0).Round(time.Millisecond))
	if err := c.m.CLI.Wait(c.id, 30*time.Second); err != nil {
		c.t.Errorf("crawlmesh crawl wait after completion: %v", err)
	}
	d := harness.CheckItems(c.t, c.m.CLI.Export(c.id), c.truth.Items)
	dead := c.m.DeadLetters(c.id)
	want := c.truth.Dead
	harness.CheckDead(c.t, dead, want)
	if st.Dead != int64(len(dead)) {
		c.t.Errorf("status says %d dead letters, the stream holds %d", st.Dead, len(dead))
	}
	c.t.Logf("crawl %s: %s; status %d ok, %d failed, %d dead, %d dropped, %d items in %.1fs",
		c.id, d, st.PagesOK, st.PagesFailed, st.Dead, st.Dropped, st.Items, st.Elapsed)
	c.counters(st)
	return d, st
}

// counters checks the crawl's counters against the ground truth (one item
// per page). A NATS restart must not make a redelivered task count twice:
// STATS keeps increments so their de-duplication ids survive it.
func (c *crawl) counters(st crawlctl.Status) string {
	var notes []string
	if st.Items != int64(len(c.truth.Items)) {
		notes = append(notes, fmt.Sprintf("items counter %d, want %d", st.Items, len(c.truth.Items)))
	}
	if st.PagesOK != int64(len(c.truth.Items)) {
		notes = append(notes, fmt.Sprintf("pages ok counter %d, want %d", st.PagesOK, len(c.truth.Items)))
	}
	if len(notes) > 0 {
		c.t.Errorf("counters off: %s", strings.Join(notes, "; "))
	}
	return strings.Join(notes, "; ")
}

// refetched lists the pages the site served more than once.
func refetched(site *harness.Site, skip map[string]bool) []string {
	var twice []string
	for p, n := range site.Hits() {
		if n > 1 && !skip[p] {
			twice = append(twice, p+" x"+strconv.Itoa(n))
		}
	}
	sort.Strings(twice)
	return twice
}

// TestKillOneNATSNodeOfThree: on a 3-node NATS cluster (every stream and
// bucket R3, chosen automatically), the server leading the task stream is
// SIGKILLed mid-crawl and later restarted; the crawl completes with the
// exact item set.
func TestKillOneNATSNodeOfThree(t *testing.T) { killOneNATSNode(t, 0) }

// TestKillOneNATSNodeOfThreePartitioned is the same with the frontier and
// seen-set in 3 partitions.
func TestKillOneNATSNodeOfThreePartitioned(t *testing.T) { killOneNATSNode(t, 3) }

// withParts labels a fault with its partitions.
func withParts(fault string, parts int) string {
	if parts > 1 {
		return fault + fmt.Sprintf(", %d partitions", parts)
	}
	return fault
}

// partitionArgs are the masters' flags for parts partitions.
func partitionArgs(parts int) []string {
	if parts > 1 {
		return []string{"--partitions", strconv.Itoa(parts)}
	}
	return nil
}

// checkPartitions checks that every partition's stream and bucket exist
// with R3 on the cluster, and that crawl c used more than one partition.
func checkPartitions(t *testing.T, m *harness.Mesh, parts int) {
	t.Helper()
	if parts <= 1 {
		return
	}
	for p := range parts {
		for _, s := range []string{mesh.TasksStreamOf(p), mesh.StatsStreamOf(p), "KV_" + mesh.SeenBucketOf(p)} {
			st, err := m.JS.Stream(t.Context(), s)
			if err != nil {
				t.Fatalf("partition %d: %v", p, err)
			}
			if r := st.CachedInfo().Config.Replicas; m.Cluster.Size() >= 3 && r != 3 {
				t.Errorf("%s has %d replicas on a 3-node cluster, want 3", s, r)
			}
		}
	}
	if out, errOut, _ := m.CLI.Run("doctor"); !strings.Contains(out, fmt.Sprintf("%d partition(s)", parts)) {
		t.Errorf("crawlmesh doctor does not report %d partitions:\n%s%s", parts, out, errOut)
	}
}

// checkSpread checks that the crawl's seen-set and its pages' counters
// spread over every partition (seen keys are purged when it completes, so
// look mid-crawl).
func checkSpread(t *testing.T, m *harness.Mesh, parts int) {
	t.Helper()
	for p := range parts {
		if parts <= 1 {
			return
		}
		for _, name := range []string{"KV_" + mesh.SeenBucketOf(p), mesh.StatsStreamOf(p)} {
			st, err := m.JS.Stream(t.Context(), name)
			if err != nil {
				t.Fatal(err)
			}
			if n := st.CachedInfo().State.Msgs; n == 0 {
				t.Errorf("partition %d's %s is empty mid-crawl: the crawl did not spread", p, name)
			}
		}
	}
}

func killOneNATSNode(t *testing.T, parts int) {
	o := harness.Outcome{Fault: withParts("kill -9 one NATS node of 3 (the TASKS leader), restart it", parts)}
	defer func() { o.Survived = !t.Failed(); record(o) }()
	m := harness.StartMesh(t, harness.MeshConfig{NATS: 3, Mode: harness.Processes, Workers: 2, Lease: 10 * time.Second,
		MasterArgs: partitionArgs(parts), Partitions: parts})
	checkPartitions(t, m, parts)
	for _, s := range []string{mesh.TasksStream, "KV_" + mesh.SeenBucket, "KV_" + mesh.ElectionBucket} {
		st, err := m.JS.Stream(t.Context(), s)
		if err != nil {
			t.Fatal(err)
		}
		if r := st.CachedInfo().Config.Replicas; r != 3 {
			t.Fatalf("%s has %d replicas on a 3-node cluster, want 3 (auto)", s, r)
		}
	}
	// R3 is the master's choice, not drift.
	if out, errOut, _ := m.CLI.Run("doctor"); strings.Contains(out+errOut, "num_replicas") {
		t.Errorf("crawlmesh doctor reports the chosen replicas as drift:\n%s%s", out, errOut)
	}
	site := harness.NewSite(t, harness.SiteConfig{Pages: 300, Latency: 60 * time.Millisecond})
	c := startCrawl(t, m, site, "nats-kill")
	before := done(c.midCrawl(60))
	checkSpread(t, m, parts)

	victim := m.Cluster.StreamLeader(m.JS, mesh.TasksStream)
	if victim < 0 {
		t.Fatal("no leader for stream TASKS")
	}
	t0 := time.Now()
	m.Cluster.Kill(victim)
	o.Recovery = c.progressAfter(before, t0, 90*time.Second)
	t.Logf("killed %s (TASKS leader) after %d pages; crawl progressing again %v later", m.Cluster.Name(victim), before, o.Recovery)
	// doctor says the cluster runs without it (it said all was well).
	want := "server " + m.Cluster.Name(victim) + " not answering"
	var out string
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(500 * time.Millisecond) {
		if out, _, _ = m.CLI.Run("doctor", "--timeout", "3s"); strings.Contains(out, want) {
			break
		}
	}
	if !strings.Contains(out, want) || !strings.Contains(out, "WARN  replicas") {
		t.Errorf("doctor with %s down does not say %q:\n%s", m.Cluster.Name(victim), want, out)
	}
	m.Cluster.Restart(victim)
	o.Items, _ = c.finish(2 * time.Minute)
	if l := m.Cluster.StreamLeader(m.JS, mesh.TasksStream); l < 0 {
		t.Errorf("TASKS has no leader after the restart of %s", m.Cluster.Name(victim))
	}
}

// TestKillLeaderMasterAndWorker: the leading master and a worker are
// SIGKILLed at the same moment; the standby master takes over, the other
// workers take the dead one's tasks after AckWait, and the crawl completes
// with the exact item set.
func TestKillLeaderMasterAndWorker(t *testing.T) {
	killLeaderMasterAndWorker(t, harness.MeshConfig{NATS: 1, Mode: harness.Processes, Masters: 2, Workers: 3})
}

// TestKillLeaderMasterAndWorkerPartitioned is the same on the 3-node
// cluster with 3 partitions.
func TestKillLeaderMasterAndWorkerPartitioned(t *testing.T) {
	killLeaderMasterAndWorker(t, harness.MeshConfig{NATS: 3, Mode: harness.Processes, Masters: 2, Workers: 3,
		Lease: 10 * time.Second, MasterArgs: partitionArgs(3), Partitions: 3})
}

func killLeaderMasterAndWorker(t *testing.T, cfg harness.MeshConfig) {
	o := harness.Outcome{Fault: withParts("kill -9 the leader master and a worker together", cfg.Partitions)}
	defer func() { o.Survived = !t.Failed(); record(o) }()
	m := harness.StartMesh(t, cfg)
	checkPartitions(t, m, cfg.Partitions)
	site := harness.NewSite(t, harness.SiteConfig{Pages: 300, Latency: 80 * time.Millisecond})
	c := startCrawl(t, m, site, "leader-kill")
	before := done(c.midCrawl(60))
	checkSpread(t, m, cfg.Partitions)

	leader := m.WaitLeader(10*time.Second, "")
	t0 := time.Now()
	var wg sync.WaitGroup
	wg.Go(func() { m.Master(leader.ID).Kill() })
	wg.Go(func() { m.Workers[0].Kill() })
	wg.Wait()
	next := m.WaitLeader(30*time.Second, leader.ID)
	takeover := time.Since(t0)
	o.Recovery = c.progressAfter(before, t0, 60*time.Second)
	if next.Term <= leader.Term {
		t.Errorf("new leader %s has term %d, not above the killed leader's %d", next.ID, next.Term, leader.Term)
	}
	t.Logf("killed leader %s (term %d) and w1 after %d pages: %s leads (term %d) after %v; crawl progressing again after %v",
		leader.ID, leader.Term, before, next.ID, next.Term, takeover.Round(time.Millisecond), o.Recovery.Round(time.Millisecond))
	o.Note = "takeover " + takeover.Round(10*time.Millisecond).String()
	o.Items, _ = c.finish(2 * time.Minute)
}

// TestRestartEverything: every process — the three NATS servers, both
// masters and the workers — is SIGKILLed mid-crawl and started again all
// at once; the crawl resumes within 15 s where it was (pages done before
// are not fetched again, beyond what workers held unacked) and completes
// with the exact item set.
func TestRestartEverything(t *testing.T) { restartEverything(t, 0) }

// TestRestartEverythingPartitioned is the same with 3 partitions.
func TestRestartEverythingPartitioned(t *testing.T) { restartEverything(t, 3) }

func restartEverything(t *testing.T, parts int) {
	o := harness.Outcome{Fault: withParts("kill -9 and restart every process (3 NATS, 2 masters, 2 workers)", parts)}
	defer func() { o.Survived = !t.Failed(); record(o) }()
	m := harness.StartMesh(t, harness.MeshConfig{NATS: 3, Mode: harness.Processes, Masters: 2, Workers: 2, Lease: 10 * time.Second,
		MasterArgs: partitionArgs(parts), Partitions: parts})
	checkPartitions(t, m, parts)
	site := harness.NewSite(t, harness.SiteConfig{Pages: 300, Latency: 60 * time.Millisecond})
	c := startCrawl(t, m, site, "restart-all")
	c.midCrawl(80)
	checkSpread(t, m, parts)

	procs := append(append([]*harness.Proc{}, m.Workers...), m.Masters...)
	var wg sync.WaitGroup
	for _, p := range procs {
		wg.Go(p.Kill)
	}
	for i := range m.Cluster.Size() {
		wg.Go(func() { m.Cluster.Kill(i) })
	}
	wg.Wait()
	fetchedBefore := site.Hits()
	if len(fetchedBefore) >= len(c.truth.Items) {
		t.Fatalf("every page was fetched before the kill; make the site slower")
	}
	// Everything comes back together, as after a power cut: masters and
	// workers start as soon as the NATS servers accept connections, while
	// JetStream is still electing its leaders, and must wait for it rather
	// than exit.
	t0 := time.Now()
	for i := range m.Cluster.Size() {
		wg.Go(func() { m.Cluster.Restart(i) })
	}
	wg.Wait()
	for _, p := range procs {
		p.Restart()
	}
	m.Cluster.WaitReady(60 * time.Second)
	ready := time.Since(t0)
	// Status through the restarted cluster: at most what the workers could
	// hold was done since the restart.
	var st crawlctl.Status
	harness.Eventually(t, 30*time.Second, "status readable after the restart", func() bool {
		var err error
		st, err = m.Status(c.id)
		return err == nil
	})
	if st.State != mesh.CrawlRunning {
		t.Fatalf("after the restart the crawl is %s", st.State)
	}
	before := done(st)
	// Resumed is seen at the site: a page fetched that was not fetched
	// before the kill. (Status counts cannot tell it: the first status
	// read may come after the workers crawled on, leaving only the crawl's
	// tail, retries included, to move it; two CI runs measured 29.5 s so.)
	harness.Eventually(t, 60*time.Second, "a page fetched that was not fetched before the kill", func() bool {
		for p := range site.Hits() {
			if fetchedBefore[p] == 0 {
				return true
			}
		}
		return false
	})
	resumed := time.Since(t0)
	t.Logf("crawl resumed (a page fetched that was not fetched before) %v after the restart", resumed.Round(time.Millisecond))
	// The guarantee is that the crawl resumes rather than starts over; this
	// bound only catches a stall such as masters that waited out 30 s
	// requests per asset while JetStream elected its leaders. Quiet runs
	// resume in about 10 s, most of it JetStream electing its leaders.
	if resumed > 30*time.Second {
		t.Errorf("the crawl resumed %v after the restart, want within 30s", resumed.Round(time.Millisecond))
	}
	o.Recovery = c.progressAfter(before, t0, 90*time.Second)
	t.Logf("%d paths fetched before the kill; NATS ready %v after the restart; %d pages done at the first status read after it; progressing past that %v after the restart",
		len(fetchedBefore), ready.Round(time.Millisecond), before, o.Recovery.Round(time.Millisecond))
	o.Items, _ = c.finish(2 * time.Minute)

	// Resumed, not restarted: only tasks the workers held unacked at the
	// kill may have been fetched twice (4 per fetch slot, as the workers
	// prefetch), far fewer than the pages done before it.
	twice := refetched(site, nil)
	bound := m.Slots() * 4
	t.Logf("fetched twice: %d %v", len(twice), twice)
	if len(twice) > bound || len(twice) >= len(fetchedBefore)/2 {
		t.Errorf("%d of %d pages fetched before the kill were fetched again, more than the %d workers can hold: the crawl started over",
			len(twice), len(fetchedBefore), bound)
	}
	o.Note = fmt.Sprintf("%d of %d pages refetched", len(twice), len(fetchedBefore))
}

// TestFrozenWorkerPastAckWait: a worker is frozen (SIGSTOP) while it holds
// tasks, for twice the task AckWait, so its tasks go to the other worker;
// then it is thawed and finishes its stale work — late publishes and acks —
// which must not double any item.
func TestFrozenWorkerPastAckWait(t *testing.T) {
	o := harness.Outcome{Fault: "SIGSTOP a worker for 2x AckWait, then SIGCONT"}
	defer func() { o.Survived = !t.Failed(); record(o) }()
	m := harness.StartMesh(t, harness.MeshConfig{NATS: 1, Mode: harness.Processes, Workers: 2, AckWait: 2 * time.Second})
	site := harness.NewSite(t, harness.SiteConfig{Pages: 300, Latency: 100 * time.Millisecond})
	c := startCrawl(t, m, site, "freeze")
	before := done(c.midCrawl(40))
	harness.Eventually(t, 10*time.Second, "w1 holding tasks", func() bool {
		hb, err := m.Heartbeat("w1")
		return err == nil && hb.ActiveTasks > 0
	})

	t0 := time.Now()
	m.Workers[0].Freeze()
	hitsBefore := site.Hits()
	frozenAt := site.Requests()
	// Recovered when a page the frozen worker had requested is requested
	// again: its task went to the other worker after AckWait.
	taken := func() bool {
		for p, n := range site.Hits() {
			if n > 1 && hitsBefore[p] > 0 {
				return true
			}
		}
		return false
	}
	o.Recovery = harness.Eventually(t, 30*time.Second, "a task of the frozen w1 redone by w2", taken)
	if o.Recovery < m.Cfg.AckWait-500*time.Millisecond {
		t.Logf("a page was refetched %v after the freeze, before AckWait %v", o.Recovery, m.Cfg.AckWait)
	}
	if wait := 2*m.Cfg.AckWait - time.Since(t0); wait > 0 {
		time.Sleep(wait) // the fault itself: stay frozen past AckWait
	}
	st, err := m.Status(c.id)
	if err != nil {
		t.Fatal(err)
	}
	if st.State != mesh.CrawlRunning {
		t.Logf("crawl finished while w1 was frozen")
	}
	m.Workers[0].Thaw()
	t.Logf("w1 frozen %v after %d pages (%d requests); its first task redone %v after the freeze",
		time.Since(t0).Round(time.Millisecond), before, frozenAt, o.Recovery.Round(time.Millisecond))
	o.Items, _ = c.finish(2 * time.Minute)
	// The fault was real: pages w1 held were fetched again by w2 (and w1,
	// thawed, finished its stale fetches too).
	var again []string
	for p, n := range site.Hits() {
		if n > 1 && hitsBefore[p] > 0 {
			again = append(again, p)
		}
	}
	sort.Strings(again)
	t.Logf("pages fetched before the freeze and again after it: %d %v", len(again), again)
	if out := m.Workers[0].Output(); strings.Contains(out, "SIGCONT") {
		t.Logf("w1 after the thaw:\n%s", out[strings.LastIndex(out, "SIGCONT"):])
	}
	if len(again) == 0 {
		t.Errorf("no page was fetched twice: w1's tasks were never taken over, the fault was not exercised")
	}
	if !m.Workers[0].Running() {
		t.Errorf("w1 exited after the thaw")
	}
	m.WaitOnline(15*time.Second, "w1")
	o.Note = "frozen " + (2 * m.Cfg.AckWait).String()
}

// hostileFaults is the site of TestHostileSite: pages that hang, reset
// and answer garbage always (dead letters after the workers' attempts),
// and once (retried, then crawled).
var hostileFaults = map[int]harness.Fault{
	7: {Kind: harness.Hang}, 13: {Kind: harness.Reset}, 21: {Kind: harness.Garbage},
	30: {Kind: harness.Hang, Times: 1}, 40: {Kind: harness.Reset, Times: 1}, 50: {Kind: harness.Garbage, Times: 1},
}

// TestHostileSite: pages that hang the connection (cut by the request
// timeout), reset it, or answer bytes that are not HTTP. Always-failing
// pages end in the dead letters once each; once-failing pages are retried
// and crawled; everything else is crawled exactly once.
func TestHostileSite(t *testing.T) {
	o := harness.Outcome{Fault: "site hangs, resets (RST), sends garbage bytes"}
	defer func() { o.Survived = !t.Failed(); record(o) }()
	m := harness.StartMesh(t, harness.MeshConfig{NATS: 1, Mode: harness.Processes, Workers: 2, RequestTimeout: time.Second})
	site := harness.NewSite(t, harness.SiteConfig{Pages: 150, Latency: 20 * time.Millisecond, Faults: hostileFaults})
	c := startCrawl(t, m, site, "hostile")
	t0 := time.Now()
	o.Items, _ = c.finish(2 * time.Minute)
	o.Recovery = time.Since(t0)
	hits := site.Hits()
	for i, f := range hostileFaults {
		p := "/p/" + strconv.Itoa(i) + ".html"
		want := m.Cfg.MaxAttempts
		if f.Times > 0 {
			want = f.Times + 1
		}
		if !c.truth.Dead[site.PageURL(i)] && !c.truth.Retried[site.PageURL(i)] {
			continue // not reachable
		}
		// Go's transport itself retries a GET once when a reused
		// connection is reset before any answer, so a reset page may be
		// requested up to twice per attempt.
		if hits[p] < want || (f.Kind != harness.Reset && hits[p] != want) {
			t.Errorf("%s (%v, times %d) fetched %d times, want %d", p, f.Kind, f.Times, hits[p], want)
		}
		t.Logf("%s (%v, times %d): %d requests", p, f.Kind, f.Times, hits[p])
	}
	if twice := refetched(site, faultPaths()); len(twice) > 0 {
		t.Errorf("healthy pages fetched more than once: %v", twice)
	}
	o.Note = fmt.Sprintf("%d dead letters, %d retried pages; recovery = whole crawl", len(c.truth.Dead), len(c.truth.Retried))
}

func faultPaths() map[string]bool {
	m := map[string]bool{}
	for i := range hostileFaults {
		m["/p/"+strconv.Itoa(i)+".html"] = true
	}
	return m
}

// TestNATSRestartWhileWorkersPublish: the only NATS server is SIGKILLed
// three times while the workers are busy publishing children, items and
// dead letters, and restarted on the same store each time; the crawl
// completes with the exact item set and each dead letter once.
func TestNATSRestartWhileWorkersPublish(t *testing.T) {
	o := harness.Outcome{Fault: "kill -9 + restart the NATS server while workers publish (3 times)"}
	defer func() { o.Survived = !t.Failed(); record(o) }()
	m := harness.StartMesh(t, harness.MeshConfig{NATS: 1, Mode: harness.Processes, Workers: 2, RequestTimeout: time.Second})
	site := harness.NewSite(t, harness.SiteConfig{Pages: 300, Latency: 40 * time.Millisecond, Faults: map[int]harness.Fault{
		13: {Kind: harness.Reset}, 21: {Kind: harness.Garbage}, 40: {Kind: harness.Reset, Times: 1}}})
	c := startCrawl(t, m, site, "nats-restart")
	var recoveries []string
	for _, at := range []int64{60, 120, 180} {
		before := done(c.midCrawl(at))
		t0 := time.Now()
		m.Cluster.Kill(0)
		m.Cluster.Restart(0)
		r := c.progressAfter(before, t0, 90*time.Second)
		o.Recovery = max(o.Recovery, r)
		recoveries = append(recoveries, r.Round(10*time.Millisecond).String())
		t.Logf("NATS killed and restarted after %d pages; crawl progressing again after %v", before, r.Round(time.Millisecond))
	}
	o.Items, _ = c.finish(2 * time.Minute)
	o.Note = "recoveries " + strings.Join(recoveries, ", ") + " (max shown)"
}

// TestNATSGracefulRestart: the only NATS server is stopped with SIGTERM,
// as an operator restarts it, twice while the workers are busy, and
// started again on the same store. While it shuts down its JetStream
// still delivers tasks but cannot answer for a host's turn: workers that
// gave such a task back at once dead-lettered tens of tasks as "delivered
// 6 times" within a second, and their subtrees were never crawled (found
// by review). The crawl must complete with the exact item set.
func TestNATSGracefulRestart(t *testing.T) {
	o := harness.Outcome{Fault: "SIGTERM + restart the NATS server while workers crawl (2 times)"}
	defer func() { o.Survived = !t.Failed(); record(o) }()
	m := harness.StartMesh(t, harness.MeshConfig{NATS: 1, Mode: harness.Processes, Workers: 2, RequestTimeout: time.Second})
	site := harness.NewSite(t, harness.SiteConfig{Pages: 400, Latency: 20 * time.Millisecond})
	c := startCrawl(t, m, site, "nats-sigterm")
	for _, at := range []int64{80, 200} {
		before := done(c.midCrawl(at))
		t0 := time.Now()
		if code := m.Cluster.Proc(0).Stop(30 * time.Second); code != 0 {
			t.Logf("nats-server exited %d on SIGTERM", code)
		}
		m.Cluster.Restart(0)
		r := c.progressAfter(before, t0, 90*time.Second)
		o.Recovery = max(o.Recovery, r)
		t.Logf("NATS stopped and restarted after %d pages; crawl progressing again after %v", before, r.Round(time.Millisecond))
	}
	o.Items, _ = c.finish(2 * time.Minute)
}

// TestRollingWorkerRestarts: workers are stopped cleanly (SIGTERM) and
// started again, one after the other, eight times while a polite crawl
// (one request at a time, most tasks waiting for the host's turn) runs.
// A stopping worker gives back what it holds; a hand-back must not spend
// an attempt, or tasks given back often enough are dead-lettered never
// having been requested (found by review: 121 of 1,000 pages). The crawl
// must complete with the exact item set and no dead letter.
func TestRollingWorkerRestarts(t *testing.T) {
	o := harness.Outcome{Fault: "SIGTERM + restart of each worker in turn, 8 times"}
	defer func() { o.Survived = !t.Failed(); record(o) }()
	m := harness.StartMesh(t, harness.MeshConfig{NATS: 1, Mode: harness.Processes, Workers: 2})
	site := harness.NewSite(t, harness.SiteConfig{Pages: 240, Latency: 5 * time.Millisecond})
	spec := strings.Replace(site.Spec("rolling"), "  delay: 0s\n  parallelism: 64\n", "  delay: 40ms\n  parallelism: 1\n", 1)
	if !strings.Contains(spec, "parallelism: 1\n") {
		t.Fatalf("spec not made polite:\n%s", spec)
	}
	m.CLI.Apply(spec)
	c := &crawl{t: t, m: m, site: site, truth: site.Truth(m.Cfg.MaxAttempts)}
	c.pages = int64(len(c.truth.Items))
	c.id = m.CLI.Start("rolling")
	for i := range 8 {
		c.midCrawl(int64(15 * (i + 1)))
		w := m.Workers[i%len(m.Workers)]
		if code := w.Stop(30 * time.Second); code != 0 {
			t.Errorf("%s exited %d on SIGTERM, want 0", w.Name(), code)
		}
		w.Restart()
	}
	o.Items, _ = c.finish(3 * time.Minute)
}

// TestNATSRestartWithPageBudget: as above, with max_pages 150 on a site of
// 300 pages: the crawl must still yield exactly 150 distinct pages' items
// (which ones depends on the order of the crawl), none doubled.
func TestNATSRestartWithPageBudget(t *testing.T) {
	o := harness.Outcome{Fault: "kill -9 + restart NATS 3 times, crawl with max_pages 150"}
	defer func() { o.Survived = !t.Failed(); record(o) }()
	m := harness.StartMesh(t, harness.MeshConfig{NATS: 1, Mode: harness.Processes, Workers: 2})
	site := harness.NewSite(t, harness.SiteConfig{Pages: 300, Latency: 40 * time.Millisecond})
	const budget = 150
	m.CLI.Apply(strings.Replace(site.Spec("budget"), "max_pages: 0", "max_pages: "+strconv.Itoa(budget), 1))
	id := m.CLI.Start("budget")
	c := &crawl{t: t, m: m, site: site, id: id, pages: budget}
	for _, at := range []int64{30, 60, 90} { // done before the budget's 150
		before := done(c.midCrawl(at))
		t0 := time.Now()
		m.Cluster.Kill(0)
		m.Cluster.Restart(0)
		o.Recovery = max(o.Recovery, c.progressAfter(before, t0, 90*time.Second))
	}
	st := m.WaitDone(id, 2*time.Minute)
	truth := site.Truth(m.Cfg.MaxAttempts).Items
	items := m.CLI.Export(id)
	keys := make([]string, len(items))
	for i, it := range items {
		keys[i] = harness.ItemKey(it)
	}
	// Every item must be one of the site's, once; and there must be budget of them.
	d := harness.Compare("items", keys, truth)
	d.Lost = nil // which pages fall inside the budget is not fixed
	if len(d.Doubled)+len(d.Unexpected) > 0 {
		t.Errorf("%s", d)
	}
	distinct := len(keys) - len(d.Doubled)
	if distinct != budget {
		t.Errorf("%d distinct items, want exactly max_pages = %d (status: %+v)", distinct, budget, st)
		d.Lost = make([]string, max(0, budget-distinct))
	}
	o.Items = d
	t.Logf("crawl %s: %d items, %d distinct; status %d ok, %d admitted", id, len(keys), distinct, st.PagesOK, st.Admitted)
	if st.PagesOK != int64(distinct) || st.Items != int64(distinct) {
		t.Errorf("counters: %d pages ok, %d items; want %d each", st.PagesOK, st.Items, distinct)
	}
}
