package mesh

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"strconv"
	"time"
)

// JetStream assets of the crawler (definitions in streams/).
const (
	SpidersBucket  = "spiders"  // spider name -> spec JSON
	CrawlsBucket   = "crawls"   // crawl id -> Crawl JSON
	SeenBucket     = "seen"     // "<crawl>.<url hash>" -> id of the task that found it
	HostsBucket    = "hosts"    // host key -> politeness state (pkg/politeness)
	ThrottleBucket = "throttle" // host key -> live override of delay and parallelism
	ElectionBucket = "election" // key master: the leading master (pkg/election)
	RobotsBucket   = "robots"   // robots.txt shared mesh-wide (pkg/robotstore)
	ConfigBucket   = "config"   // cluster configuration applied live (pkg/clusterconfig)
	SinksBucket    = "sinks"    // sink name -> sink; status.<name> -> its delivery status (pkg/sink)
	TasksStream    = "TASKS"    // work queue, one message per URL of a crawl
	TasksConsumer  = "workers"  // the one durable pull consumer all workers share
	ResultsStream  = "RESULTS"  // items
	DeadStream     = "DEADLETTER"
	LogsStream     = "LOGS"
	StatsStream    = "STATS" // counters
)

// Subjects of one crawl.
func TaskSubject(crawl string) string   { return "crawlmesh.task." + crawl }
func ResultSubject(crawl string) string { return "crawlmesh.result." + crawl }
func DeadSubject(crawl string) string   { return "crawlmesh.dlq." + crawl }
func LogSubject(crawl string) string    { return "crawlmesh.log." + crawl }

// SinkDeadSubject is where a sink's given-up items go in DEADLETTER (a
// crawl id always holds a '-', so it never equals the token "sink").
func SinkDeadSubject(sink string) string { return "crawlmesh.dlq.sink." + sink }

// SinkConsumer is the durable consumer of RESULTS that sink delivers from.
func SinkConsumer(sink string) string { return "sink-" + sink }

// StatSubject is the counter subject of one statistic of a crawl.
func StatSubject(crawl, name string) string { return "crawlmesh.stat." + crawl + "." + name }

// Statistic names.
const (
	StatAdmitted = "admitted" // URLs accepted into the crawl (max_pages counts these)
	StatOK       = "ok"       // pages fetched and processed
	StatFailed   = "failed"   // pages that ended in an error (4xx, robots, too large ...)
	StatDead     = "dead"     // tasks sent to the dead-letter stream
	StatItems    = "items"
	StatDropped  = "dropped" // tasks dropped: cancelled crawl, duplicate after redirect, over max_pages
	// StatIncomplete counts elements that were not items for lacking a
	// required field.
	StatIncomplete = "incomplete"
	StatSitemaps   = "sitemaps" // sitemap files read (sitemap tasks done)
)

// Stats lists every statistic name.
var Stats = []string{StatAdmitted, StatOK, StatFailed, StatDead, StatItems, StatDropped, StatIncomplete, StatSitemaps}

// Master API subjects (request/reply), answered by masters.
const (
	APICrawlStart  = "crawlmesh.api.crawl.start"
	APICrawlCancel = "crawlmesh.api.crawl.cancel"
	// APICrawlFail is sent by a worker that cannot run a crawl at all
	// (login failed, a variable unset): the leading master fails it.
	APICrawlFail = "crawlmesh.api.crawl.fail"
	// APICrawlRequeue puts a crawl's dead letters back on the work queue
	// (crawlmesh crawl requeue, the console's re-queue action).
	APICrawlRequeue = "crawlmesh.api.crawl.requeue"
)

// Crawl states.
const (
	CrawlRunning   = "running"
	CrawlCompleted = "completed"
	CrawlCancelled = "cancelled"
	CrawlFailed    = "failed" // a crawl-level error, or no page fetched (Crawl.Error says which)
)

// Crawl is one run of a spider, stored in CrawlsBucket.
type Crawl struct {
	ID         string          `json:"id"`
	Spider     string          `json:"spider"`
	State      string          `json:"state"`
	Spec       json.RawMessage `json:"spec"` // the spec as it was at start
	CreatedAt  time.Time       `json:"created_at"`
	SeededAt   *time.Time      `json:"seeded_at,omitempty"`
	FinishedAt *time.Time      `json:"finished_at,omitempty"`
	// Error is why a failed crawl failed (never a secret).
	Error string `json:"error,omitempty"`
	// Partitions of the frontier and seen-set when the crawl started
	// (0: one); the crawl keeps them if the mesh grows (see [Layout]).
	Partitions int `json:"partitions,omitempty"`
	// ShortIDs says the crawl's tasks and page counters carry 16-character
	// de-duplication ids ([PubID]). A crawl recorded before them keeps the
	// long ids, so a task redelivered across an upgrade still finds the id
	// its first delivery stored.
	ShortIDs bool `json:"short_ids,omitempty"`
	// NothingFetched marks a crawl that failed because no page of it
	// was fetched (every one failed or was dead-lettered), not for a
	// crawl-level error: its tasks were not dropped, so its dead letters
	// can be re-queued, reopening it.
	NothingFetched bool `json:"nothing_fetched,omitempty"`
}

// Layout is the layout of the crawl's frontier, seen-set and ids, with its
// spec's partition_by.
func (c *Crawl) Layout(partitionBy string) Layout {
	l := NewLayout(c.Partitions, partitionBy)
	l.ShortIDs = c.ShortIDs
	return l
}

// Task is one URL of one crawl on the work queue.
type Task struct {
	ID       string `json:"id"` // URLHash of URL; unique within the crawl
	Crawl    string `json:"crawl"`
	Spider   string `json:"spider"`
	URL      string `json:"url"` // canonical
	Depth    int    `json:"depth"`
	Referrer string `json:"referrer,omitempty"`
	// Kind is empty for a page; TaskSitemap for a sitemap file (or, with
	// URL a robots.txt, the Sitemap: lines of that host's robots.txt),
	// whose listed URLs become page tasks at depth 0.
	Kind string `json:"kind,omitempty"`
	// Requeued counts how often the task came back from the dead letters.
	// A re-queued task runs as a redelivered one: claims it made before it
	// died (children, a redirect's target) are recognised as its own.
	Requeued int `json:"requeued,omitempty"`
	// HandedBack counts how often a stopping worker gave the task back
	// unfinished, as a new message; Tried carries the attempts its earlier
	// messages spent. A delivery is counted as an attempt, and a stopping
	// worker's Nak made rolling restarts dead-letter pages never requested:
	// a hand-back costs none. A handed-back task runs as a redelivered one.
	HandedBack int `json:"handed_back,omitempty"`
	Tried      int `json:"tried,omitempty"`
}

// Returned reports whether the task ran before as another message (from
// the dead letters or handed back): claims it made then are its own.
func (t Task) Returned() bool { return t.Requeued > 0 || t.HandedBack > 0 }

// Task kinds.
const (
	TaskPage    = ""
	TaskSitemap = "sitemap"
)

// Item is one extracted item, as stored in the results stream and
// written by `results export --format jsonl`.
type Item struct {
	URL       string    `json:"url"`
	Spider    string    `json:"spider"`
	Crawl     string    `json:"crawl"`
	Depth     int       `json:"depth"`
	FetchedAt time.Time `json:"fetched_at"`
	// Data values are strings, or lists of strings (a field with all: true).
	Data map[string]any `json:"data"`
}

// Text is field name as one string: a string as it is, a list as its
// compact JSON (a CSV cell), a missing field as "".
func (it Item) Text(name string) string {
	switch v := it.Data[name].(type) {
	case nil:
		return ""
	case string:
		return v
	default:
		b, _ := json.Marshal(v)
		return string(b)
	}
}

// LogEntry is one line of a crawl's task log.
type LogEntry struct {
	Time    time.Time `json:"ts"`
	Node    string    `json:"node"`
	URL     string    `json:"url"`
	Attempt int       `json:"attempt"`
	Status  int       `json:"status,omitempty"`
	Outcome string    `json:"outcome"` // ok, retry, failed, dead, dropped, crawl-failed
	Error   string    `json:"error,omitempty"`
	Items   int       `json:"items,omitempty"`
	Links   int       `json:"links,omitempty"`
	// Incomplete counts elements that were not items for lacking a
	// required field.
	Incomplete int `json:"incomplete,omitempty"`
	// Warnings are the spec's expressions that failed on the page's data
	// ("items[0].fields.price: ascii_downcase cannot be applied to: number
	// (7)"): their values are missing.
	Warnings []string `json:"warnings,omitempty"`
	Sitemaps int      `json:"sitemaps,omitempty"` // child sitemaps a sitemap task listed
	Duration float64  `json:"duration_seconds"`
	// Sampled, on an "ok" line, is the number of successful pages the line
	// stands for: past its first 1,000 successes in a crawl a worker logs
	// one success in 10. Other outcomes are never sampled.
	Sampled int `json:"sampled,omitempty"`
}

// URLHash is the key of a canonical URL: 16 bytes of SHA-256, base64url.
func URLHash(canonicalURL string) string {
	h := sha256.Sum256([]byte(canonicalURL))
	return base64.RawURLEncoding.EncodeToString(h[:16])
}

// TaskID is the id of a task of kind for a canonical URL: its URLHash for a
// page; for a sitemap the hash of "sitemap " and the URL, so a page and a
// sitemap of one URL are different tasks (and seen-set keys).
func TaskID(kind, canonicalURL string) string {
	if kind == TaskSitemap {
		return URLHash("sitemap " + canonicalURL)
	}
	return URLHash(canonicalURL)
}

// PubID is the 16-character publish de-duplication id of what a task of a
// crawl publishes once ("" for the task itself, else a counter's name).
// The server keeps every id for the stream's duplicates window, and at
// 3 ids a page their length is a tenth of its memory for a page: the long
// form "<crawl>.<task>.<counter>" took 48–64 bytes an id where this takes
// 16. 96 bits of SHA-256 make a collision within a window vanishingly
// unlikely (birthday bound near 2^48 ids).
func PubID(crawl, taskID, what string) string {
	h := sha256.Sum256([]byte(crawl + "\x00" + taskID + "\x00" + what))
	return base64.RawURLEncoding.EncodeToString(h[:12])
}

// SeenKey is the seen-set key of a URL hash in a crawl.
func SeenKey(crawl, urlHash string) string { return crawl + "." + urlHash }

// ItemID is the publish de-duplication id of the index-th item of a page.
func ItemID(crawl, finalURL string, index int) string {
	h := sha256.Sum256([]byte(crawl + "\x00" + finalURL + "\x00" + strconv.Itoa(index)))
	return base64.RawURLEncoding.EncodeToString(h[:18])
}

// NewCrawlID returns "<spider>-<yyyymmddhhmmss>-<4 hex>", one subject token.
func NewCrawlID(spider string, now time.Time) string {
	var b [2]byte
	_, _ = rand.Read(b[:])
	return spider + "-" + now.UTC().Format("20060102150405") + "-" + hex.EncodeToString(b[:])
}
