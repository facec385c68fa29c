// Package streams holds every JetStream stream, consumer, KV bucket and
// Object Store the mesh uses, as JSON files beside this one, and applies
// them at start-up.
//
// The files are the source of truth: they are embedded into every binary, so
// code and files cannot disagree. KV files (kv/*.json) are nats.go
// KeyValueConfig JSON, the same settings as `nats kv add` flags (durations in
// nanoseconds); stream files (stream/*.json) are StreamConfig JSON that
// `nats stream add --config FILE` accepts; consumer files
// (consumer/STREAM/*.json) are ConsumerConfig JSON for
// `nats consumer add STREAM --config FILE`; Object Store files
// (objectstore/*.json) are nats.go ObjectStoreConfig JSON, the settings of
// `nats object add` (bucket B is stream OBJ_B).
//
// [Ensure] creates what is missing and updates what differs. After applying
// it reads the running config back: a difference the server would not
// change (storage type, say) is reported as an error, never silently kept.
package streams
