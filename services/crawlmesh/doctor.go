package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"

	"github.com/crawlmesh/crawlmesh/pkg/clusterconfig"
	"github.com/crawlmesh/crawlmesh/pkg/clusterview"
	"github.com/crawlmesh/crawlmesh/pkg/election"
	"github.com/crawlmesh/crawlmesh/pkg/mesh"
	"github.com/crawlmesh/crawlmesh/pkg/natsconn"
	"github.com/crawlmesh/crawlmesh/pkg/sink"
	"github.com/crawlmesh/crawlmesh/streams"
)

// finding is one line of the doctor's report.
type finding struct {
	Level string `json:"level"` // ok, warn, fail
	Check string `json:"check"`
	Text  string `json:"text"`
}

func newDoctorCmd(c *cli, f *clientFlags) *cobra.Command {
	var skew time.Duration
	cmd := &cobra.Command{
		Use:   "doctor",
		Short: "check and explain: NATS, JetStream, assets, masters and leader, node ids, clock skew, dead letters, paused workers",
		Args:  nArgs(0, 0, "doctor"),
		RunE:  func(cmd *cobra.Command, _ []string) error { return runDoctor(cmd.Context(), c, f, &skew) },
	}
	cmd.Flags().DurationVar(&skew, "skew", 2*time.Second, "clock skew above which a node is reported")
	return cmd
}

func runDoctor(ctx context.Context, c *cli, f *clientFlags, skewMax *time.Duration) error {
	var out []finding
	add := func(level, check, format string, a ...any) {
		out = append(out, finding{level, check, fmt.Sprintf(format, a...)})
	}
	report := func() error {
		if err := ctx.Err(); err != nil {
			// Interrupted: checks cut short would read as problems
			// ("no bucket config: context canceled").
			return err
		}
		fails := 0
		if f.output == "json" {
			_ = writeJSON(c.stdout, out)
		}
		for _, x := range out {
			if x.Level == "fail" {
				fails++
			}
			if f.output != "json" {
				fmt.Fprintf(c.stdout, "%-4s  %-10s %s\n", map[string]string{"ok": "ok", "warn": "WARN", "fail": "FAIL"}[x.Level], x.Check, x.Text)
			}
		}
		if fails > 0 {
			return fmt.Errorf("%d problem(s) found", fails)
		}
		return nil
	}

	nc, js, err := f.connect(ctx)
	if errors.Is(err, natsconn.ErrJetStreamNotReady) {
		add("fail", "jetstream", "JetStream does not answer yet (no reply within %v): a NATS cluster elects its meta leader 4–9 s after a majority of its servers run; masters and workers wait for it and go on by themselves", f.timeout)
		return report()
	}
	if err != nil {
		add("fail", "nats", "%v", err)
		return report()
	}
	defer nc.Close()
	add("ok", "nats", "connected to %s (server %s)", natsconn.Redact(nc.ConnectedUrl()), nc.ConnectedServerVersion())
	if ai, err := js.AccountInfo(ctx); err == nil {
		// The account's limits: a server's max_file_store and max_memory_store
		// bound it too, but only the system account can read those, so no
		// account limit is not "unlimited" (found by review).
		lim := func(v int64) string {
			if v < 0 {
				return "no account limit (the servers' own JetStream limits apply)"
			}
			return fmt.Sprintf("the account's %.1f MiB", float64(v)/(1<<20))
		}
		add("ok", "jetstream", "enabled; storage %.1f MiB used of %s, memory %.1f MiB of %s, %d streams",
			float64(ai.Store)/(1<<20), lim(ai.Limits.MaxStore), float64(ai.Memory)/(1<<20), lim(ai.Limits.MaxMemory), ai.Streams)
	}

	if !doctorAssets(ctx, js, add) {
		return report() // nothing else can be read before the assets exist
	}

	view, err := fetchNodes(ctx, nc, js, f.timeout)
	if err != nil {
		add("fail", "nodes", "cannot read the nodes: %v", err)
		return report()
	}
	parts, _ := streams.RecordedPartitions(ctx, js) // doctorAssets reported an error
	masters, workers, paused := 0, 0, 0
	for _, n := range view.Nodes {
		if !n.Online {
			add("warn", "nodes", "%s %s is offline (last heartbeat %.0fs ago)", n.Role, n.ID, n.AgeSeconds)
			continue
		}
		switch n.Role {
		case mesh.RoleMaster:
			masters++
		case mesh.RoleAgent:
			doctorAgent(n, add)
		case mesh.RoleWorker:
			workers++
			switch n.State {
			case mesh.StatePaused:
				paused++
				add("warn", "workers", "worker %s is paused: it takes no new tasks (crawlmesh node resume %s)", n.ID, n.ID)
			case mesh.StateDraining:
				// A drain cannot be resumed (found by review: the advice
				// to resume was refused).
				paused++
				add("warn", "workers", "worker %s is draining: it takes no new tasks and stops once its tasks are done (start it again, or its host agent does, to have it take tasks)", n.ID)
			}
			if p := n.Heartbeat.Partitions; p > 0 && p < parts {
				add("fail", "workers", "worker %s pulls %d of the mesh's %d partitions (it started before the others were added): restart it, or tasks of hosts that hash to them wait",
					n.ID, p, parts)
			}
		}
		if s := math.Abs(n.SkewSeconds); s > skewMax.Seconds() {
			add("fail", "clock", "%s %s is %+.1fs off the NATS server's clock (threshold %v): liveness does not depend on it, but fix NTP on that host",
				n.Role, n.ID, n.SkewSeconds, *skewMax)
		}
	}
	switch {
	case masters == 0:
		if why, ok := mastersJoining(ctx, js); ok {
			add("fail", "masters", "none online yet: %s; masters and workers go on by themselves", why)
			break
		}
		add("fail", "masters", "no master is online: crawls cannot start or complete (run master, or crawlmesh up)")
	default:
		add("ok", "masters", "%d master(s) online", masters)
	}
	if workers == 0 {
		add("fail", "workers", "no worker is online yet: tasks wait in the queue; workers started with the mesh join once the masters' assets exist (else run worker)")
	} else {
		add("ok", "workers", "%d worker(s) online, %d paused or draining", workers, paused)
	}
	doctorLeader(ctx, js, view, add)
	doctorDuplicates(ctx, js, add)
	doctorConfig(ctx, js, view, add)
	doctorScheduleZones(view, add)
	// Checks of what nodes report in their heartbeats go here, each with
	// the view and add: the host agent's (children that keep restarting)
	// belongs beside doctorConfig.
	if s, err := js.Stream(ctx, mesh.DeadStream); err == nil {
		// Sinks' given-up items (crawlmesh.dlq.sink.NAME) are counted apart
		// from tasks.
		var sinkDead uint64
		if si, err := s.Info(ctx, jetstream.WithSubjectFilter(mesh.SinkDeadSubject(">"))); err == nil {
			for _, n := range si.State.Subjects {
				sinkDead += n
			}
		}
		n := s.CachedInfo().State.Msgs - min(sinkDead, s.CachedInfo().State.Msgs)
		if n > 0 {
			add("warn", "deadletter", "%d task(s) in the dead-letter stream %s%s: crawlmesh crawl deadletters ID lists a crawl's with their reasons; crawl requeue ID --all runs them again",
				n, mesh.DeadStream, deadCrawls(ctx, s))
		} else {
			add("ok", "deadletter", "no dead letters")
		}
		if sinkDead > 0 {
			add("warn", "deadletter", "%d sink item(s) given up into %s (subjects %s): see their Crawlmesh-Reason header", sinkDead, mesh.DeadStream, mesh.SinkDeadSubject("NAME"))
		}
	}
	doctorSinks(ctx, js, add)
	doctorStranded(ctx, js, parts, add)
	return report()
}

// deadCrawls names the crawls with the most dead letters, as
// " (crawl A: 12, crawl B: 3 and 4 more crawls)" ("" if unreadable): the
// count alone left an operator to guess which crawl to look at (review).
func deadCrawls(ctx context.Context, s jetstream.Stream) string {
	si, err := s.Info(ctx, jetstream.WithSubjectFilter(mesh.DeadSubject("*")))
	if err != nil || len(si.State.Subjects) == 0 {
		return ""
	}
	type crawlCount struct {
		id string
		n  uint64
	}
	var cs []crawlCount
	for subj, n := range si.State.Subjects {
		cs = append(cs, crawlCount{strings.TrimPrefix(subj, mesh.DeadSubject("")), n})
	}
	slices.SortFunc(cs, func(a, b crawlCount) int { return cmp.Or(cmp.Compare(b.n, a.n), cmp.Compare(a.id, b.id)) })
	var parts []string
	for _, c := range cs[:min(3, len(cs))] {
		parts = append(parts, fmt.Sprintf("crawl %s: %d", c.id, c.n))
	}
	more := ""
	if len(cs) > 3 {
		more = fmt.Sprintf(" and %d more crawls", len(cs)-3)
	}
	return " (" + strings.Join(parts, ", ") + more + ")"
}

// masterJoining is how long after a master created the mesh's assets
// doctor takes a missing master heartbeat for one still joining.
const masterJoining = 30 * time.Second

// mastersJoining says why a mesh without an online master is one coming
// up, if it is: a master holds the setup lease (it is creating or checking
// the assets; the others wait for it), or one finished creating them
// moments ago (its first heartbeat follows) and no master has ever led.
// A mesh whose masters have led and are gone leaves the election key or
// its marker.
func mastersJoining(ctx context.Context, js jetstream.JetStream) (string, bool) {
	if h, err := streams.SetupHolder(ctx, js); err == nil && h != "" {
		return fmt.Sprintf("master %s is setting up the mesh's streams and buckets and joins next", h), true
	}
	ago, ended, err := streams.SetupEnded(ctx, js)
	if err != nil || !ended || ago > masterJoining {
		return "", false
	}
	s, err := js.Stream(ctx, "KV_"+mesh.ElectionBucket)
	if err != nil {
		return "", false
	}
	if _, err = s.GetLastMsgForSubject(ctx, "$KV."+mesh.ElectionBucket+"."+election.Key); !errors.Is(err, jetstream.ErrMsgNotFound) {
		return "", false
	}
	return fmt.Sprintf("a master finished creating the mesh's streams and buckets %v ago and is joining", ago.Round(time.Millisecond)), true
}

// doctorScheduleZones warns when online masters evaluate cron schedules
// in different time zones (--schedule-tz): a schedule would fire at
// another hour after a failover (found by review: 9 hours apart).
func doctorScheduleZones(view nodesOutput, add func(level, check, format string, a ...any)) {
	byZone := map[string][]string{}
	for _, n := range view.Nodes {
		if n.Role == mesh.RoleMaster && n.Online && n.Heartbeat.ScheduleTZ != "" {
			byZone[n.Heartbeat.ScheduleTZ] = append(byZone[n.Heartbeat.ScheduleTZ], n.ID)
		}
	}
	if len(byZone) < 2 {
		return
	}
	var parts []string
	for _, z := range slices.Sorted(maps.Keys(byZone)) {
		parts = append(parts, z+": "+strings.Join(byZone[z], ", "))
	}
	add("warn", "schedules", "masters evaluate cron schedules in different time zones (%s): after a failover a schedule fires at another hour; start every master with the same --schedule-tz (or give schedules CRON_TZ=)",
		strings.Join(parts, "; "))
}

// doctorConfig checks the cluster configuration: stored values no node
// would apply, node overrides of nodes that no longer exist, and values
// online nodes report they could not apply.
func doctorConfig(ctx context.Context, js jetstream.JetStream, view nodesOutput, add func(level, check, format string, a ...any)) {
	kv, err := js.KeyValue(ctx, mesh.ConfigBucket)
	if err != nil {
		add("fail", "config", "no bucket %s: %v", mesh.ConfigBucket, err)
		return
	}
	es, err := clusterconfig.List(ctx, kv)
	if err != nil {
		add("fail", "config", "%v", err)
		return
	}
	known := map[string]bool{}
	for _, n := range view.Nodes {
		known[n.ID] = true
	}
	problems := 0
	for _, e := range es {
		if e.Error != "" {
			problems++
			add("fail", "config", "stored value %s = %q at %s is refused by every node: %s (crawlmesh config rm %s%s)", e.Key, e.Value, e.Scope, e.Error, e.Key, scopeFlag(e.Scope))
			continue
		}
		// Only a master's view knows offline nodes; from the live keys
		// alone an offline node would look gone.
		if e.Scope.Level == clusterconfig.LevelNode && !known[e.Scope.Target] && view.Source != "kv" {
			problems++
			add("warn", "config", "%s = %s is set for node %s, which no longer exists (no heartbeat, not in the masters' view): crawlmesh config rm %s --node %s",
				e.Key, e.Value, e.Scope.Target, e.Key, e.Scope.Target)
		}
	}
	for _, n := range view.Nodes {
		c := n.Heartbeat.Config
		if !n.Online || c == nil {
			continue
		}
		for _, msg := range c.Errors {
			problems++
			add("fail", "config", "%s %s could not apply a value: %s", n.Role, n.ID, msg)
		}
	}
	if problems == 0 {
		add("ok", "config", "%d stored value(s); every online node applied its configuration", len(es))
	}
}

func scopeFlag(s clusterconfig.Scope) string {
	switch s.Level {
	case clusterconfig.LevelRole:
		return " --role " + s.Target
	case clusterconfig.LevelNode:
		return " --node " + s.Target
	}
	return ""
}

// doctorSinks reports each sink: delivering, failing (with its redacted
// error), or not picked up by any master.
// doctorStranded warns of tasks a work queue holds that its consumer will
// never deliver: below its ack floor, neither pending nor awaiting an ack.
// A server whose disk filled up left 914 so, and the crawl ran for good
// (found by review). Read twice, a second apart, so an ack in flight is
// not taken for one.
func doctorStranded(ctx context.Context, js jetstream.JetStream, parts int, add func(level, check, format string, a ...any)) {
	stranded := func(p int) (uint64, error) {
		s, err := js.Stream(ctx, mesh.TasksStreamOf(p))
		if err != nil {
			return 0, err
		}
		c, err := s.Consumer(ctx, mesh.TasksConsumer)
		if err != nil {
			return 0, err
		}
		si, ci := s.CachedInfo(), c.CachedInfo()
		held := ci.NumPending + uint64(ci.NumAckPending)
		if si.State.Msgs <= held || si.State.FirstSeq > ci.AckFloor.Stream {
			return 0, nil
		}
		return si.State.Msgs - held, nil
	}
	for p := range max(parts, 1) {
		n, err := stranded(p)
		if err != nil || n == 0 {
			continue
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
		if again, err := stranded(p); err != nil || again == 0 {
			continue
		}
		add("fail", "tasks", "stream %s holds %d task(s) its consumer %s will not deliver (below its ack floor: a server's storage failed?); their crawls never complete. Delete the consumer (nats consumer rm %s %s) and restart a master: it creates it again from the stream's first task, and de-duplication keeps the crawl exact",
			mesh.TasksStreamOf(p), n, mesh.TasksConsumer, mesh.TasksStreamOf(p), mesh.TasksConsumer)
	}
}

func doctorSinks(ctx context.Context, js jetstream.JetStream, add func(level, check, format string, a ...any)) {
	kv, err := js.KeyValue(ctx, mesh.SinksBucket)
	if err != nil {
		return
	}
	rows, err := sink.List(ctx, js, kv)
	if err != nil {
		add("warn", "sinks", "cannot read the sinks: %v", err)
		return
	}
	for _, r := range rows {
		lag := "unknown"
		if r.Lag != nil {
			lag = fmt.Sprint(*r.Lag)
		}
		st := r.Status
		switch {
		case st == nil && time.Since(r.CreatedAt) > 30*time.Second:
			add("fail", "sinks", "sink %s: no master has started delivering it (%s items waiting): is a master of this version leading?", r.Name, lag)
		case st == nil:
			add("ok", "sinks", "sink %s: just added, the leading master starts it", r.Name)
		case st.State == sink.StateFailing && r.Lag != nil && *r.Lag == 0:
			// Its last delivery failed and its items were given up; with
			// nothing waiting, nothing tells whether the target has healed.
			add("warn", "sinks", "sink %s (%s): its last delivery failed (%s) and %d item(s) were given up to the dead letters; nothing waits, so the next item tells whether the target works again",
				r.Name, r.Type, oneLine(st.LastError), st.Dead)
		case st.State == sink.StateFailing:
			since := ""
			if st.FailingSince != nil {
				since = " for " + time.Since(*st.FailingSince).Round(time.Second).String()
			}
			fix := "retried with back-off"
			if st.Permanent {
				fix = "it will not heal by itself: fix the target or the sink (retried slowly until then)"
			}
			add("fail", "sinks", "sink %s (%s) is failing%s, %s items waiting: %s — %s", r.Name, r.Type, since, lag, oneLine(st.LastError), fix)
		default:
			add("ok", "sinks", "sink %s (%s): %d items delivered, %s waiting", r.Name, r.Type, st.Delivered, lag)
		}
	}
}

// deployFlag names the master flag that sets a drifted setting on
// purpose ("" for none): the README's --lease 15s on a cluster is advice,
// not a fault to warn about on every run.
func deployFlag(d streams.Drift) string {
	switch {
	case d.Asset == "kv "+mesh.ElectionBucket && d.Setting == "ttl":
		return "--lease"
	case d.Asset == "kv "+mesh.NodesBucket && d.Setting == "ttl":
		return "--heartbeat-ttl"
	case strings.HasPrefix(d.Asset, "consumer "+mesh.TasksStream) && d.Setting == "ack_wait":
		return "--task-ack-wait"
	}
	return ""
}

// doctorAssets checks every asset of streams/ exists with its settings. It
// reports false when assets are missing: while a master creates them, what
// the mesh waits for is said once, not asset by asset.
func doctorAssets(ctx context.Context, js jetstream.JetStream, add func(level, check, format string, a ...any)) bool {
	defs, err := streams.Load()
	if err != nil {
		add("fail", "assets", "%v", err)
		return false
	}
	holder, _ := streams.SetupHolder(ctx, js)
	parts, perr := streams.RecordedPartitions(ctx, js)
	if perr != nil {
		add("fail", "partitions", "%v", perr)
	}
	defs = defs.Partitioned(parts)
	missing, drift, unreadable := 0, 0, 0
	var present []string
	check := func(dd []streams.Drift, err error, name string) {
		if err == nil {
			present = append(present, name)
		}
		switch {
		case err != nil && !assetMissing(err):
			// A timeout is not a missing asset: with a server of the
			// cluster gone its streams' leaders move for a few seconds
			// (found by review: doctor said "deleted?").
			unreadable++
			add("fail", "assets", "%s could not be read: %v (its leader is being elected, as when it was just created or a server of the cluster went down; run doctor again in a few seconds)", name, err)
		case err != nil:
			missing++
			if holder == "" {
				add("fail", "assets", "%s: %v (a master creates it at start-up)", name, err)
			}
		default:
			for _, d := range dd {
				if d.Setting == "num_replicas" {
					continue // the master's choice (--replicas, 3 on a cluster), not drift
				}
				if flag := deployFlag(d); flag != "" {
					add("ok", "assets", "%s: %s is %s, set by the masters' %s (streams/ says %s)", d.Asset, d.Setting, d.Have, flag, d.Want)
					continue
				}
				drift++
				add("warn", "assets", "%s", d)
			}
		}
	}
	for _, c := range defs.KV {
		dd, err := streams.CheckKV(ctx, js, c)
		check(dd, err, "kv "+c.Bucket)
	}
	for _, c := range defs.Streams {
		dd, err := streams.CheckStream(ctx, js, c)
		check(dd, err, "stream "+c.Name)
	}
	for _, c := range defs.Consumers {
		dd, err := streams.CheckConsumer(ctx, js, c)
		check(dd, err, "consumer "+c.Stream+"/"+c.Config.Durable)
	}
	for _, c := range defs.ObjectStores {
		dd, err := streams.CheckObjectStore(ctx, js, c)
		check(dd, err, "objectstore "+c.Bucket)
	}
	doctorPartitions(ctx, js, parts, add)
	switch {
	case missing > 0 && holder != "":
		add("fail", "assets", "master %s is creating the mesh's streams and buckets (%d of %d still missing): masters and workers wait for them and go on by themselves",
			holder, missing, len(defs.Names()))
	case missing > 0 && slices.Equal(present, []string{"kv " + mesh.ElectionBucket}):
		// A starting master creates bucket election first, to hold its
		// setup lease in it; between the two, or while the lease cannot
		// be read, only that bucket exists (seen in a cold start of a
		// cluster: it read as assets deleted by hand).
		add("fail", "assets", "a master is setting up the mesh's streams and buckets (only bucket %s, which holds its setup lease, exists yet): masters and workers wait for them and go on by themselves",
			mesh.ElectionBucket)
	case missing > 0 && missing < len(defs.Names()):
		// Some there, some not: deleted by hand (or a JetStream store lost
		// in part). Masters create assets when they start, not while running.
		add("fail", "assets", "%d of %d streams and buckets are missing though the others exist (deleted?): running masters do not recreate them; restart a master and it creates what is missing",
			missing, len(defs.Names()))
	case missing > 0:
		add("fail", "assets", "the mesh's streams and buckets do not exist yet: a starting master creates them once JetStream answers; if none is starting, start one (master, or crawlmesh up)")
	case drift == 0 && unreadable == 0:
		add("ok", "assets", "all %d streams, buckets and consumers present as defined in streams/", len(defs.Names()))
	}
	doctorReplicas(ctx, js, defs, add)
	return missing == 0
}

// replicaSilent: a replica not heard from for this long is down or cut
// off, not merely catching up (replicas answer their leader's heartbeats
// every second or so).
const replicaSilent = 5 * time.Second

// assetMissing tells an asset that does not exist from one that could
// not be read.
func assetMissing(err error) bool {
	var me *streams.MissingError
	return errors.As(err, &me) || errors.Is(err, jetstream.ErrStreamNotFound) ||
		errors.Is(err, jetstream.ErrBucketNotFound) || errors.Is(err, jetstream.ErrConsumerNotFound)
}

// doctorReplicas reports replicas that are offline or behind their
// leader: a cluster running on two servers of three looked healthy
// (found by review). JetStream reports them per stream (KV and object
// store buckets are streams too).
func doctorReplicas(ctx context.Context, js jetstream.JetStream, defs streams.Definitions, add func(level, check, format string, a ...any)) {
	names := make([]string, 0, len(defs.Streams)+len(defs.KV)+len(defs.ObjectStores))
	for _, c := range defs.Streams {
		names = append(names, c.Name)
	}
	for _, c := range defs.KV {
		names = append(names, "KV_"+c.Bucket)
	}
	for _, c := range defs.ObjectStores {
		names = append(names, "OBJ_"+c.Bucket)
	}
	byPeer := map[string][]string{} // "n3 offline" -> streams
	replicated := false
	for _, name := range names {
		rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		s, err := js.Stream(rctx, name)
		cancel()
		if err != nil {
			continue // reported by the asset check
		}
		cl := s.CachedInfo().Cluster
		if cl == nil || len(cl.Replicas) == 0 {
			continue
		}
		replicated = true
		for _, r := range cl.Replicas {
			if r.Name == "" {
				r.Name = "peer " + r.Peer // one JetStream does not know by name
			}
			switch {
			case r.Offline || r.Active > replicaSilent:
				// A killed server stays "not current" for long before
				// JetStream calls it offline; silence tells them apart.
				byPeer[r.Name+" not answering"] = append(byPeer[r.Name+" not answering"], name)
			case !r.Current:
				byPeer[r.Name+" behind its leader"] = append(byPeer[r.Name+" behind its leader"], name)
			}
		}
	}
	if !replicated {
		return
	}
	if len(byPeer) == 0 {
		add("ok", "replicas", "every replica of every replicated stream and bucket is online and current")
		return
	}
	for _, k := range slices.Sorted(maps.Keys(byPeer)) {
		list := byPeer[k]
		shown := list
		if len(shown) > 4 {
			shown = append(shown[:4:4], fmt.Sprintf("%d more", len(list)-4))
		}
		add("warn", "replicas", "server %s for %d stream(s) and bucket(s): %s (the cluster runs with fewer copies until it catches up; a server down for good needs replacing)",
			k, len(list), strings.Join(shown, ", "))
	}
}

// doctorPartitions reports the recorded partition count and any
// partition stream or bucket beyond it (left by a master started with a
// higher --partitions whose record was then lowered by hand or by an
// older master: crawls may have tasks there that nobody consumes).
func doctorPartitions(ctx context.Context, js jetstream.JetStream, parts int, add func(level, check, format string, a ...any)) {
	if parts == 0 {
		return // no TASKS yet: the assets check says so
	}
	// Partitions are created in order, so a partition beyond the record
	// shows as the next one's stream or bucket.
	var stray []string
	for _, name := range []string{mesh.TasksStreamOf(parts), mesh.StatsStreamOf(parts), "KV_" + mesh.SeenBucketOf(parts)} {
		if _, err := js.Stream(ctx, name); err == nil {
			stray = append(stray, name)
		}
	}
	if len(stray) > 0 {
		add("fail", "partitions", "stream %s records %d partition(s) but %s exist: start a master with --partitions set to the mesh's count (tasks there are not consumed)",
			mesh.TasksStream, parts, strings.Join(stray, ", "))
		return
	}
	add("ok", "partitions", "%d partition(s) of the frontier, seen-set and page counters (recorded in stream %s)", parts, mesh.TasksStream)
}

// doctorLeader checks the election key against the masters' heartbeats.
func doctorLeader(ctx context.Context, js jetstream.JetStream, view nodesOutput, add func(level, check, format string, a ...any)) {
	kv, err := js.KeyValue(ctx, mesh.ElectionBucket)
	if err != nil {
		add("fail", "leader", "no election bucket: %v", err)
		return
	}
	e, err := kv.Get(ctx, election.Key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		online := 0
		for _, n := range view.Nodes {
			if n.Role == mesh.RoleMaster && n.Online {
				online++
			}
		}
		if online > 0 {
			add("fail", "leader", "no master leads yet: the %d online master(s) elect one within a lease; crawls start once one leads", online)
			return
		}
		add("fail", "leader", "no master leads: crawls do not start, complete or get scheduled")
		return
	}
	if err != nil {
		add("fail", "leader", "%v", err)
		return
	}
	var ld election.Leader
	_ = json.Unmarshal(e.Value(), &ld)
	claimed := 0
	for _, n := range view.Nodes {
		if n.Role == mesh.RoleMaster && n.Online && n.Leader {
			if n.ID != ld.ID {
				add("warn", "leader", "master %s's heartbeat says it leads (term %d), the election key says %s (term %d): a leader change in progress?", n.ID, n.Heartbeat.Term, ld.ID, ld.Term)
				if n.Heartbeat.Term < ld.Term {
					// An older term is fenced: workers refuse its
					// commands. A killed leader's last heartbeat says so
					// until its key expires; it is no second leader (found
					// by review: doctor failed every ordinary failover).
					continue
				}
			}
			claimed++
		}
	}
	if claimed > 1 {
		add("fail", "leader", "%d masters say they lead", claimed)
		return
	}
	add("ok", "leader", "master %s leads, term %d", ld.ID, ld.Term)
}

// doctorDuplicates watches the heartbeats for a few seconds: two processes
// with one id show as one key written by two instances.
func doctorDuplicates(ctx context.Context, js jetstream.JetStream, add func(level, check, format string, a ...any)) {
	kv, err := js.KeyValue(ctx, mesh.NodesBucket)
	if err != nil {
		return
	}
	wctx, cancel := context.WithTimeout(ctx, 2500*time.Millisecond)
	defer cancel()
	w, err := kv.WatchAll(wctx, jetstream.UpdatesOnly())
	if err != nil {
		return
	}
	defer func() { _ = w.Stop() }()
	inst := map[string]map[string]bool{}
	for {
		select {
		case <-wctx.Done():
			dups := 0
			for id, set := range inst {
				if len(set) > 1 {
					dups++
					add("fail", "node ids", "node id %s is written by %d processes: give each its own --id", id, len(set))
				}
			}
			if dups == 0 {
				add("ok", "node ids", "no node id used by two processes (watched 2.5s)")
			}
			return
		case e, ok := <-w.Updates():
			if !ok {
				return
			}
			if e == nil || e.Operation() != jetstream.KeyValuePut {
				continue
			}
			if hb, err := mesh.DecodeHeartbeat(e.Value()); err == nil {
				if inst[e.Key()] == nil {
					inst[e.Key()] = map[string]bool{}
				}
				inst[e.Key()][hb.Instance] = true
			}
		}
	}
}

// agentRestartsWarn is how many restarts of one worker make its agent's
// report a warning: a worker that keeps dying crawls little and says why
// in the agent's log.
const agentRestartsWarn = 3

// doctorAgent reports a host agent whose workers keep restarting.
func doctorAgent(n clusterview.Node, add func(level, check, format string, a ...any)) {
	bad := 0
	for _, ch := range n.Heartbeat.Children {
		if ch.Restarts < agentRestartsWarn {
			continue
		}
		bad++
		level := "warn"
		if ch.State == mesh.ChildBackoff {
			level = "fail" // down right now, waiting to be restarted again
		}
		add(level, "agents", "agent %s: worker %s restarted %d times (last: %s), now %s: its output is in the agent's log, marked child=%s",
			n.ID, ch.ID, ch.Restarts, ch.LastExit, ch.State, ch.ID)
	}
	if bad == 0 {
		add("ok", "agents", "agent %s: %d worker(s), none restarting", n.ID, len(n.Heartbeat.Children))
	}
}
