package natstest

import "go.uber.org/goleak"

// LeakOptions are goleak's options for packages whose tests put Object
// Store objects. nats.go's ObjectStore.Put publishes chunks through a
// JetStream context of its own, which starts a goroutine waiting for
// connection status changes, and closes that context when the put is
// done; when the close comes first, the goroutine reads a channel already
// set to nil and blocks for good (nats.go v1.55.0, the newest:
// jetstream/publish.go resetPendingAcksOnReconnect against
// jetstream.go cleanupReplySub). It is the library's, one small goroutine
// per put, and whether it shows depends on scheduling: CI caught it once
// in pkg/files. Every other goroutine is still checked.
func LeakOptions() []goleak.Option {
	return []goleak.Option{goleak.IgnoreTopFunction("github.com/nats-io/nats.go/jetstream.(*jetStream).resetPendingAcksOnReconnect")}
}
