// Package agent is a host agent: it runs N worker processes on its machine
// and keeps them running (DolphinDB's agent, which starts and stops a
// machine's data nodes).
//
// [Agent.Run] starts children with ids ID-1..ID-N, restarts one that exits
// unasked with exponential back-off (reset once it has run for a stable
// period), and heartbeats in bucket nodes with role agent and the children
// listed. The command scale (crawlmesh node scale AGENT N) changes N live;
// the workers it stops are drained first, highest index first. When ctx
// ends, every child is drained, then stopped, and the agent's key purged.
//
// A child is asked to drain through its stdin (the line "drain"), not over
// NATS: the agent then needs no permission to send commands, only what a
// worker has (its heartbeat key and its command subject). A child whose
// stdin closes (the agent died, even by SIGKILL) stops by itself.
package agent
