package clusterview

import (
	"github.com/prometheus/client_golang/prometheus"
)

var (
	descOnline = prometheus.NewDesc("crawlmesh_node_online",
		"1 while the node's heartbeat key exists in KV bucket nodes, 0 for a node gone offline (kept for the retention period).",
		[]string{"node", "role"}, nil)
	descAge = prometheus.NewDesc("crawlmesh_node_heartbeat_age_seconds",
		"Seconds since this master received the node's last heartbeat (its own monotonic clock).",
		[]string{"node"}, nil)
	descSkew = prometheus.NewDesc("crawlmesh_node_clock_skew_seconds",
		"The node's update_ts minus the NATS server's timestamp of the same heartbeat: its clock offset plus publish latency.",
		[]string{"node"}, nil)
	descActive = prometheus.NewDesc("crawlmesh_node_active_tasks",
		"Tasks in flight on the node, from its last heartbeat.", []string{"node"}, nil)
	descCapacity = prometheus.NewDesc("crawlmesh_node_capacity",
		"Task slots (concurrency) of the node, from its last heartbeat.", []string{"node"}, nil)
	descLeader = prometheus.NewDesc("crawlmesh_node_leader",
		"1 when the node's last heartbeat says it is the leading master.", []string{"node"}, nil)
	descState = prometheus.NewDesc("crawlmesh_node_state",
		"1 for the node's state from its last heartbeat (running, paused, draining ...); one series per node.",
		[]string{"node", "state"}, nil)
	descNodes = prometheus.NewDesc("crawlmesh_nodes",
		"Nodes in the view by role and online state.", []string{"role", "online"}, nil)
)

// Describe implements prometheus.Collector.
func (v *View) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descOnline, descAge, descSkew, descActive, descCapacity, descLeader, descState, descNodes} {
		ch <- d
	}
}

// Collect implements prometheus.Collector from the live view, so the
// metrics are never a stale copy.
func (v *View) Collect(ch chan<- prometheus.Metric) {
	counts := map[[2]string]int{}
	for _, n := range v.Nodes() {
		online := 0.0
		if n.Online {
			online = 1
		}
		ch <- prometheus.MustNewConstMetric(descOnline, prometheus.GaugeValue, online, n.ID, n.Role)
		ch <- prometheus.MustNewConstMetric(descAge, prometheus.GaugeValue, n.AgeSeconds, n.ID)
		ch <- prometheus.MustNewConstMetric(descSkew, prometheus.GaugeValue, n.SkewSeconds, n.ID)
		ch <- prometheus.MustNewConstMetric(descActive, prometheus.GaugeValue, float64(n.ActiveTasks), n.ID)
		ch <- prometheus.MustNewConstMetric(descCapacity, prometheus.GaugeValue, float64(n.Capacity), n.ID)
		leader := 0.0
		if n.Leader {
			leader = 1
		}
		ch <- prometheus.MustNewConstMetric(descLeader, prometheus.GaugeValue, leader, n.ID)
		if n.State != "" {
			ch <- prometheus.MustNewConstMetric(descState, prometheus.GaugeValue, 1, n.ID, n.State)
		}
		state := "0"
		if n.Online {
			state = "1"
		}
		counts[[2]string{n.Role, state}]++
	}
	for k, c := range counts {
		ch <- prometheus.MustNewConstMetric(descNodes, prometheus.GaugeValue, float64(c), k[0], k[1])
	}
}
