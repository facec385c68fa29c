package mesh

import (
	"hash/fnv"
	"strconv"
	"strings"
)

// Partitions. The frontier (stream TASKS) and the seen-set (bucket seen)
// can be split into N partitions, so that JetStream places their streams
// (and their Raft leaders) on different servers of a cluster: one stream
// is served by one leader however many servers there are. Partition 0 is
// the mesh of one partition as it always was (TASKS, seen, subjects
// crawlmesh.task.<crawl>); partition p > 0 is stream TASKS_<p> on subjects
// crawlmesh.task_<p>.<crawl> with its own consumer "workers", bucket
// seen_<p> and counter stream STATS_<p>. N is chosen when the assets are created (the master's
// --partitions), recorded in the metadata of stream TASKS under
// [PartitionsMeta], and copied into every crawl's record when it starts, so
// a crawl keeps the N it began with.
const PartitionsMeta = "crawlmesh_partitions"

// MaxPartitions bounds --partitions.
const MaxPartitions = 64

// Ways to choose a URL's partition (the spec's partition_by).
const (
	PartitionByHost = "host" // default: one host's tasks stay together
	PartitionByURL  = "url"  // spreads one huge host over every partition
)

// Layout is how one crawl's frontier and seen-set are split, and how its
// tasks and page counters are named for de-duplication.
type Layout struct {
	Parts    int  // partitions; 0 or 1: one
	ByURL    bool // partition by the whole URL rather than its host
	ShortIDs bool // [PubID] ids (see [Crawl.ShortIDs])
}

// PubID is the publish de-duplication id of a task of the crawl ("" for
// what) or of one of its counters: [PubID], or the long form a crawl
// recorded before short ids uses.
func (l Layout) PubID(crawl, taskID, what string) string {
	switch {
	case l.ShortIDs:
		return PubID(crawl, taskID, what)
	case what == "":
		return crawl + "." + taskID
	}
	return crawl + "." + taskID + "." + what
}

// NewLayout returns the layout of a crawl with parts partitions and the
// spec's partition_by.
func NewLayout(parts int, by string) Layout { return Layout{Parts: parts, ByURL: by == PartitionByURL} }

// N is the number of partitions (at least 1).
func (l Layout) N() int { return max(l.Parts, 1) }

// Of is the partition of a canonical URL: a hash of its host (or of the
// whole URL with ByURL) modulo N. It depends on the URL alone, so every
// node agrees on where a URL's seen key and task live.
func (l Layout) Of(canonicalURL string) int {
	n := l.N()
	if n == 1 {
		return 0
	}
	key := canonicalURL
	if !l.ByURL {
		key = hostOf(canonicalURL)
	}
	h := fnv.New32a()
	_, _ = h.Write([]byte(key))
	return int(h.Sum32() % uint32(n))
}

// hostOf is the authority of an absolute URL ("" when it has none).
func hostOf(u string) string {
	_, rest, ok := strings.Cut(u, "://")
	if !ok {
		return ""
	}
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		rest = rest[:i]
	}
	if i := strings.LastIndexByte(rest, '@'); i >= 0 {
		rest = rest[i+1:]
	}
	return strings.ToLower(rest)
}

// TasksStreamOf is the work-queue stream of partition p.
func TasksStreamOf(p int) string {
	if p == 0 {
		return TasksStream
	}
	return TasksStream + "_" + strconv.Itoa(p)
}

// SeenBucketOf is the seen-set bucket of partition p.
func SeenBucketOf(p int) string {
	if p == 0 {
		return SeenBucket
	}
	return SeenBucket + "_" + strconv.Itoa(p)
}

// TaskSubjectOf is the task subject of a crawl in partition p.
func TaskSubjectOf(p int, crawl string) string {
	if p == 0 {
		return TaskSubject(crawl)
	}
	return "crawlmesh.task_" + strconv.Itoa(p) + "." + crawl
}

// StatsStreamOf is the counter stream of partition p. A task's own
// counters (ok, items, failed ...) go to its partition's stream, so those
// per-page writes and their de-duplication ids spread over the servers
// with the frontier; a crawl's counter is the sum over its partitions.
func StatsStreamOf(p int) string {
	if p == 0 {
		return StatsStream
	}
	return StatsStream + "_" + strconv.Itoa(p)
}

// StatSubjectOf is the subject of a crawl counter in partition p.
func StatSubjectOf(p int, crawl, name string) string {
	if p == 0 {
		return StatSubject(crawl, name)
	}
	return "crawlmesh.stat_" + strconv.Itoa(p) + "." + crawl + "." + name
}

// StatSubjectsOf is the subject filter of partition p's counter stream.
func StatSubjectsOf(p int) string {
	if p == 0 {
		return "crawlmesh.stat.>"
	}
	return "crawlmesh.stat_" + strconv.Itoa(p) + ".>"
}

// PartitionOfTaskSubject is the partition of a task subject
// (crawlmesh.task.<crawl> is 0, crawlmesh.task_<p>.<crawl> is p); 0 for
// anything else.
func PartitionOfTaskSubject(subj string) int {
	rest, ok := strings.CutPrefix(subj, "crawlmesh.task_")
	if !ok {
		return 0
	}
	num, _, _ := strings.Cut(rest, ".")
	p, err := strconv.Atoi(num)
	if err != nil || p < 1 || p >= MaxPartitions {
		return 0
	}
	return p
}

// TaskSubjectsOf is the subject filter of partition p's stream.
func TaskSubjectsOf(p int) string { return TaskSubjectOf(p, ">") }

// CrawlOfTaskSubject is the crawl id of a task subject of any partition
// ("" if subj is not one).
func CrawlOfTaskSubject(subj string) string {
	rest, ok := strings.CutPrefix(subj, "crawlmesh.task")
	if !ok {
		return ""
	}
	switch {
	case strings.HasPrefix(rest, "."):
		rest = rest[1:]
	case strings.HasPrefix(rest, "_"):
		_, after, ok := strings.Cut(rest, ".")
		if !ok {
			return ""
		}
		rest = after
	default:
		return ""
	}
	if rest == "" || strings.Contains(rest, ".") {
		return ""
	}
	return rest
}
