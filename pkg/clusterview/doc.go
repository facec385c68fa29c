// Package clusterview holds a master's view of the mesh, built by watching
// KV bucket `nodes` (a watch, never polling) and exported as Prometheus
// metrics.
//
// A node is online while its heartbeat key exists. The server removes the
// key TTL after the last beat and writes a limit marker, which the watch
// delivers as a purge: that, or a node's own purge on a clean stop, turns it
// offline. Offline nodes stay in the view (online 0) for a retention period
// so dashboards show who went away rather than a series that vanished.
//
// Clock skew is the node's update_ts minus the server's timestamp of the
// same KV entry. Heartbeat age is measured on this process's monotonic clock
// since the entry arrived, so neither liveness nor age depends on clocks
// agreeing.
package clusterview
