package mesh

import "time"

// Node states reported in heartbeats.
const (
	StateRunning  = "running"  // taking tasks
	StatePaused   = "paused"   // alive, takes no new tasks
	StateDraining = "draining" // finishing in-flight work, then exits
	StateStopping = "stopping" // about to remove its key
)

// Heartbeat is the JSON value of a node's key in [NodesBucket]. The first
// seven fields are Crawlab's node heartbeat, kept so existing tooling reads it.
type Heartbeat struct {
	Key          string    `json:"key"`
	IP           string    `json:"ip"`
	MAC          string    `json:"mac"`
	Hostname     string    `json:"hostname"`
	Master       bool      `json:"master"`
	UpdateTS     time.Time `json:"update_ts"`
	UpdateTSUnix int64     `json:"update_ts_unix"`

	Role        string    `json:"role"`
	Version     string    `json:"version"`
	State       string    `json:"state"`
	Leader      bool      `json:"leader"`
	Term        uint64    `json:"term,omitempty"` // the leader's term (fencing token)
	StartedAt   time.Time `json:"started_at"`
	ActiveTasks int       `json:"active_tasks"`
	Capacity    int       `json:"capacity"`
	// Instance is random per process: it tells two processes that claim the
	// same node id apart.
	Instance string `json:"instance"`
	PID      int    `json:"pid"`
	// Agent is the id of the host agent that runs this worker ("" for a
	// worker started by other means).
	Agent string `json:"agent,omitempty"`
	// ScheduleTZ is the time zone a master evaluates cron schedules in
	// (its --schedule-tz): doctor warns when masters differ, since a
	// schedule would fire at another hour after a failover.
	ScheduleTZ string `json:"schedule_tz,omitempty"`
	// GoSpiders are the spiders written in Go that a worker has compiled
	// in (spec field go:), sorted; spider apply warns of one no worker has.
	GoSpiders []string `json:"go_spiders,omitempty"`
	// Children are an agent's worker processes (role agent only).
	Children []Child `json:"children,omitempty"`
	// Config is the node's effective cluster configuration (bucket
	// config): nil from a node of a version before it.
	Config *NodeConfig `json:"config,omitempty"`
	// Partitions is how many work-queue partitions a worker pulls from (0:
	// not pulling yet, or a version before it). Partitions added to the
	// mesh after a worker started are not among them until it restarts.
	Partitions int `json:"partitions,omitempty"`
}

// NodeConfig is what a node applies of the cluster configuration.
type NodeConfig struct {
	// Rev is the highest revision of bucket config the node has applied
	// (0: nothing stored for it yet): its effective config version.
	Rev uint64 `json:"rev"`
	// Values maps every key to the value in effect and where it came from.
	Values map[string]ConfigValue `json:"values"`
	// Errors are stored values the node could not apply (it kept the next
	// level's value), each naming the key and level.
	Errors []string `json:"errors,omitempty"`
}

// ConfigValue is one effective setting.
type ConfigValue struct {
	Value string `json:"value"`
	// Source is node, role, cluster, flag (a flag or CRAWLMESH_* variable)
	// or default.
	Source string `json:"source"`
}

// Child states in an agent's heartbeat.
const (
	ChildRunning  = "running"  // the process is up
	ChildBackoff  = "backoff"  // it exited; the agent restarts it after a delay
	ChildDraining = "draining" // asked to finish its tasks and exit
	ChildStopping = "stopping" // being stopped (SIGTERM, then SIGKILL)
)

// Child is one worker process of a host agent.
type Child struct {
	ID       string `json:"id"`
	PID      int    `json:"pid,omitempty"`
	State    string `json:"state"`
	Restarts int    `json:"restarts"`
	// LastExit says how the process last ended unasked ("exit status 1",
	// "signal: killed"); empty if it never did.
	LastExit string `json:"last_exit,omitempty"`
	// HTTP is the child's /metrics and /healthz address.
	HTTP string `json:"http,omitempty"`
}
