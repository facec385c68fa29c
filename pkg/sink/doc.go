// Package sink delivers the items of the RESULTS stream to systems users
// keep them in — PostgreSQL tables and webhooks — while crawls run, each
// item once per sink.
//
// A sink is a key of KV bucket sinks ([Sink]); [Manager] runs on the
// leading master and gives every sink its own durable consumer of RESULTS
// (mesh.SinkConsumer) and its own goroutine, so a sink that fails holds
// only its own consumer back, never crawling or another sink. Delivery is
// at least once towards the target and idempotent there: a batch is acked
// to JetStream only after the target took it (a PostgreSQL commit, a 2xx
// answer), and every item carries its stable id (crawl, final URL, index:
// the RESULTS de-duplication id), so a repeat after a crash is an upsert
// in PostgreSQL and a repeated id for a webhook receiver.
//
// Why only the leader delivers: one writer per sink keeps its status, its
// metrics and the order of its batches simple, and a leader that dies is
// replaced within a lease; the consumer holds the position, so the new
// leader resumes where the old one stood (its unacked batch comes again
// after the consumer's AckWait).
//
// Secrets are ${env:NAME} references in the stored sink (pkg/envsubst),
// expanded by the master at delivery time; every error is passed through
// a redactor that replaces the expanded values before it is logged or
// stored.
package sink
