// Package crawler runs crawl tasks on a worker and holds the pieces the
// master shares with it: admitting URLs into a crawl (the seen-set and
// max_pages), publishing tasks and counters, and reading a crawl's state.
//
// A task is one URL of one crawl on the TASKS work queue. [Crawler.Handle]
// fetches it, publishes its items and child tasks, waits for every publish
// acknowledgement, and only then acks the task. So the work queue holds at
// least one message of a crawl until its last page is done, which is how the
// master detects completion exactly (see [Pending]).
//
// De-duplication is mesh-wide and exact: a URL enters a crawl when its key
// "<crawl>.<sha256/16>" is created in KV bucket seen (a compare-and-swap on
// "no message yet", pipelined with asynchronous publishes). The key's value is
// the id of the task that found it, so a redelivered task recognises its own
// claims and publishes those children again instead of losing them. Cost: one
// small message per URL in the bucket (measured in the README). A per-worker
// filter in front of the bucket keeps links the worker has already seen from
// leaving the process.
//
// Items are published with a de-duplication id derived from crawl, final URL
// and item index (RESULTS keeps ids for its duplicate window, 20 minutes), so
// a task redelivered after its worker died between publishing and acking
// adds no item twice. A page reached by a redirect claims its final URL in
// the seen-set too, so a page linked directly and through a redirect is
// processed once.
//
// A sitemap task (Kind mesh.TaskSitemap, seeded by the master from the
// spec's `sitemaps`) is read with fetch.Sitemap: child sitemaps become
// sitemap tasks one level deeper (at most [MaxSitemapDepth]), page URLs
// that pass the crawl's link rules become page tasks at depth 0. Sitemap
// tasks go through the seen-set under their own key (hash of "sitemap "
// and the URL) but never count toward max_pages.
//
// An error that stops the whole crawl on a worker (fetch.Error with
// CrawlLevel: a failed login, an unset ${env:NAME}) is neither retried to
// death nor dead-lettered: the worker logs it, asks the masters to fail
// the crawl (mesh.APICrawlFail), and the crawl's tasks are then dropped.
package crawler
