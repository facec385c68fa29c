// Package harness runs crawlmesh the way fault tests need it: a 1- or
// 3-node nats-server cluster (in this process, or as nats-server processes
// on loopback), master and worker processes built from this module, a
// loopback site whose exact item set is known, the crawlmesh CLI, and
// helpers to kill (SIGKILL), freeze (SIGSTOP), thaw and restart any of
// them. [CheckItems] names every item that was lost or doubled.
//
// It is imported only by tests (services/internal/faults and boot's tests):
// it calls t.Fatal, builds binaries and starts processes. Every process it
// starts is killed at test cleanup, every wait has a deadline, and
// everything that builds or starts binaries skips under -short.
package harness
