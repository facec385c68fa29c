// Package mesh holds the names and wire types every crawlmesh node agrees on:
// bucket and subject names, the heartbeat value stored in KV bucket `nodes`,
// the command request and reply, and node id validation. [DecodeTask] and
// [DecodeHeartbeat] read the two values every node receives from others,
// with the checks their readers rely on.
//
// It depends on the standard library only, so every other package can import
// it without pulling in NATS or colly.
package mesh
