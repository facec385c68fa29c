// Package faults is the fault suite: each test runs a real mesh (nats-server,
// master and worker processes, a loopback site with known ground truth),
// injects one fault mid-crawl — a NATS node of three killed, the leader
// master and a worker killed together, every process restarted, a worker
// frozen past AckWait, a hostile site, NATS restarted while workers
// publish — and asserts the exact item set at the end: nothing lost,
// nothing doubled. Each test logs its recovery time; with -v the suite
// ends with the table of outcomes.
//
// It has only tests; run it with
//
//	go test -race -count=1 -v ./services/internal/faults
package faults
