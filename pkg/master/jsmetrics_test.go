package master

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/crawlmesh/crawlmesh/pkg/mesh"
	"github.com/crawlmesh/crawlmesh/streams"
	"github.com/crawlmesh/crawlmesh/streams/streamstest"
)

// TestQueueMetricsCoverPartitions: on a mesh of 3 partitions, the queue
// metrics have every partition's work queue and consumer, and tasks
// queued in partition 2 show there; only TASKS was read, so a stalled
// partition went unseen and the queue alert could not fire (found by
// review).
func TestQueueMetricsCoverPartitions(t *testing.T) {
	_, js := streamstest.Start(t, streams.Options{Partitions: 3})
	for range 4 {
		if _, err := js.Publish(t.Context(), mesh.TaskSubjectOf(2, "c1"), []byte(`{}`)); err != nil {
			t.Fatal(err)
		}
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(&jsCollector{js: js, timeout: 2 * time.Second})
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]map[string]float64{} // metric -> stream -> value
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "stream" {
					if got[mf.GetName()] == nil {
						got[mf.GetName()] = map[string]float64{}
					}
					got[mf.GetName()][l.GetValue()] = m.GetGauge().GetValue()
				}
			}
		}
	}
	for _, name := range []string{"crawlmesh_stream_messages", "crawlmesh_consumer_pending"} {
		for p := range 3 {
			if _, ok := got[name][mesh.TasksStreamOf(p)]; !ok {
				t.Errorf("%s has no series for %s: %v", name, mesh.TasksStreamOf(p), got[name])
			}
		}
	}
	if v := got["crawlmesh_stream_messages"][mesh.TasksStreamOf(2)]; v != 4 {
		t.Errorf("crawlmesh_stream_messages{stream=%q} = %v, want 4", mesh.TasksStreamOf(2), v)
	}
	if v := got["crawlmesh_consumer_pending"][mesh.TasksStreamOf(2)]; v != 4 {
		t.Errorf("crawlmesh_consumer_pending{stream=%q} = %v, want 4", mesh.TasksStreamOf(2), v)
	}
}
