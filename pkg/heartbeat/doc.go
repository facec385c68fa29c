// Package heartbeat keeps a node's key alive in KV bucket `nodes`.
//
// The bucket has a TTL enforced by the server (its MaxAge) and limit
// markers, so a key lives TTL after its last write and its expiry reaches
// watchers as a purge event. A [Beater] writes the key every interval with a
// compare-and-swap on the last revision: that both refreshes the TTL and
// detects another process writing the same key. Per-key TTLs (KeyTTL) are
// deliberately not used: an Update drops them and the key would never expire.
//
// Liveness never depends on clocks: the server ages the key. The node's own
// update_ts is only compared with the server's timestamp to measure skew.
package heartbeat
