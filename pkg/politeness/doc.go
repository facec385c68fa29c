// Package politeness enforces per-host limits across the whole mesh: at
// most Parallelism requests in flight to one host and at least Delay
// between request starts, however many workers crawl it.
//
// # Design
//
// Each host has one key in KV bucket `hosts` holding its state: the
// permits in flight (each with a lease), the server time of the last
// request start, a pause (Retry-After) and an adaptive penalty. A worker
// takes a permit with a compare-and-swap on that key, so two workers can
// never both see a free slot or both start within Delay: every start is
// serialised through the key's revision. A permit is returned with another
// CAS when the request ends; a worker that dies holding one loses it when
// its lease (request timeout + 5s) runs out, which only ever lowers the
// host's parallelism for a while.
//
// Delay is kept without trusting any clock. For a host with a delay, a
// worker first claims a pending slot (no one else starts while one is
// pending), reads back the server's stamp of that claim, and waits until
// Delay (+ [Margin]) after the last start in server time before sending.
// When the request leaves it stores "started this long before this write",
// which the next writer turns into a server time with the write's stamp.
// Both steps only ever err on the late side, so two starts are never closer
// than Delay, whatever the workers' clocks say. Leases and Retry-After
// pauses are coarse and use each worker's clock corrected by an offset
// measured from the server's stamps (NTP-style, best of five samples).
//
// With no delay only parallelism counts: a worker that finishes a request
// hands the slot to its next task waiting for the same host without a
// round trip, for up to a second, so a busy single-host crawl runs near
// plain colly's speed while overrides still apply within a second.
//
// Cost: with a delay, four KV round trips per request (claim, read back,
// start, return), about 0.5 ms on loopback, at most 1/Delay times a second
// per host; without one, two round trips per slot per second or fewer.
// Hosts are independent keys, so a crawl of many hosts is not serialised
// behind one.
// Partitioning hosts to workers (StormCrawler's way) costs nothing per
// request but needs shard leases and rebalancing when workers come and go;
// with the CAS key a worker joining or dying changes nothing.
//
// A task waiting for its host's turn keeps its work-queue message alive
// (InProgress) and does not hold one of the worker's fetch slots, so it
// neither expires into redelivery nor blocks tasks of other hosts.
//
// # Effective delay
//
// The delay of a host is the largest of the spider's politeness.delay,
// its robots.txt Crawl-delay and a live override (`crawlmesh throttle set`),
// plus the adaptive penalty. Parallelism is the spider's, or the override's.
// Defaults when the spec says nothing: parallelism 2, delay 250 ms.
//
// Adaptive back-off: a response of 429 or 5xx, a timeout or a connection
// error doubles the host's penalty (at least 500 ms, at most 30 s); a
// success slower than 2 s raises it by half (at least 250 ms); a fast
// success halves it, and below 10 ms it is dropped. A Retry-After (429 or
// 503) pauses the host until then.
package politeness
