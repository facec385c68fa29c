// Package clusterconfig owns the cluster configuration that nodes apply
// live: the table of keys (type, range, validation, documentation), where
// each value is stored in KV bucket config, how a node's effective value is
// resolved, and the [Watcher] every node runs to apply a change without a
// restart.
//
// A value is stored at one of three levels, as key
//
//	cluster.KEY          every node
//	role.ROLE.KEY        every worker or every master
//	node.ID.KEY          one node
//
// and the effective value of a key on a node is node > role > cluster >
// the process's own flag or CRAWLMESH_* variable > the default
// ([Resolve]). Values are checked when written ([Set], [Validate]) and
// again when a node reads them: a bad stored value (written by hand, or by
// an older version) is reported in the node's heartbeat and never applied;
// the node keeps the next level's value.
//
// Values are stored as their canonical text (durations as Go prints them,
// sizes in bytes), so `config ls` shows what nodes parse. Secrets never go
// in the bucket: a proxy password can only be a ${env:NAME} reference,
// expanded by the worker when it makes a request.
package clusterconfig
