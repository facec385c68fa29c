// Package nodeconfig defines the command-line flags every crawlmesh binary
// shares (NATS connection and credentials, node id, HTTP address, heartbeat
// timing, logging) and fills unset flags from CRAWLMESH_* environment
// variables, so each flag has exactly one env name.
package nodeconfig

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/crawlmesh/crawlmesh/pkg/mesh"
	"github.com/crawlmesh/crawlmesh/pkg/metrics"
	"github.com/crawlmesh/crawlmesh/pkg/natsconn"
)

// EnvName is the environment variable that sets flag name.
func EnvName(name string) string {
	if name == "nats" {
		return "CRAWLMESH_NATS_URL"
	}
	return "CRAWLMESH_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

// ApplyEnv sets every flag of fs that was not given on the command line
// from its environment variable, if that is set. getenv is os.Getenv in
// main and a map in tests.
func ApplyEnv(fs *flag.FlagSet, getenv func(string) string) error {
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if err != nil || given[f.Name] {
			return
		}
		if v := getenv(EnvName(f.Name)); v != "" {
			if e := fs.Set(f.Name, v); e != nil {
				err = fmt.Errorf("%s=%q: %v", EnvName(f.Name), v, e)
			}
		}
	})
	return err
}

// RegisterNATS adds the NATS connection flags to fs.
func RegisterNATS(fs *flag.FlagSet, c *natsconn.Config) {
	fs.StringVar(&c.URL, "nats", natsconn.DefaultURL, "NATS server URL(s), comma-separated")
	fs.StringVar(&c.Creds, "creds", "", "NATS credentials file")
	fs.StringVar(&c.NKey, "nkey", "", "NATS nkey seed file")
	fs.StringVar(&c.User, "user", "", "NATS user")
	fs.StringVar(&c.Password, "password", "", "NATS password (prefer the env var CRAWLMESH_PASSWORD)")
	fs.StringVar(&c.TLSCA, "tls-ca", "", "CA file that signed the NATS server's certificate")
	fs.StringVar(&c.TLSCert, "tls-cert", "", "client certificate for mutual TLS")
	fs.StringVar(&c.TLSKey, "tls-key", "", "client key for mutual TLS")
}

// Node is what the master and worker binaries share.
type Node struct {
	NATS              natsconn.Config
	ID                string
	HTTP              string
	HeartbeatInterval time.Duration
	HeartbeatTTL      time.Duration
	// ClockOffset shifts this node's clock as reported in heartbeats; it
	// exists to show skew measurement working, never for production.
	ClockOffset time.Duration
	LogLevel    string
	LogFormat   string
	// TaskAckWait overrides the task consumer's AckWait (masters apply it).
	TaskAckWait time.Duration
	// Lease is the master election lease (masters apply it to the bucket).
	Lease time.Duration
	// Priority orders masters on a leader vacancy (higher first).
	Priority int
	// Replicas of every JetStream asset (masters apply it): 0 chooses, 3
	// when the NATS cluster can place three copies, else 1.
	Replicas int
	// Partitions of the frontier and seen-set (masters apply it when they
	// create the assets): 0 keeps the mesh's recorded count (1 for a new
	// mesh); more than recorded adds partitions for new crawls.
	Partitions int
	// PartitionTags places partition p's stream, counter stream and bucket
	// on the NATS servers tagged PartitionTags[p mod len] (server_tags),
	// comma-separated; empty leaves placement to JetStream. Masters apply
	// it when they create the assets.
	PartitionTags string
	// Pprof serves Go's profiler on the --http address, for finding where
	// a slow node spends its time; off by default because it exposes the
	// process's internals.
	Pprof bool
	// TTLFromBucket: the node has no --heartbeat-ttl (workers): the TTL
	// of bucket nodes, which the master sets, is read on joining, and the
	// heartbeat interval is checked against it then.
	TTLFromBucket bool
	// Level is the logger's level, set by [Node.Logger] from LogLevel and
	// changed live by the cluster configuration's log_level.
	Level *slog.LevelVar
	// Set names the flags given on the command line or by CRAWLMESH_*
	// variables (filled by the binaries after parsing): the cluster
	// configuration reports their values with source "flag".
	Set map[string]bool
}

// Register adds the node flags to fs with defaults; httpDefault is the
// role's metrics address. --heartbeat-ttl is not among them: only a
// master's sets the TTL (see [Node.RegisterTTL]).
func (n *Node) Register(fs *flag.FlagSet, defaultID, httpDefault string) {
	RegisterNATS(fs, &n.NATS)
	fs.StringVar(&n.ID, "id", defaultID, "node id: the key in KV bucket nodes (letters, digits, '-', '_')")
	fs.StringVar(&n.HTTP, "http", httpDefault, "listen address for /metrics and /healthz")
	fs.DurationVar(&n.HeartbeatInterval, "heartbeat-interval", time.Second, "time between heartbeats")
	fs.DurationVar(&n.ClockOffset, "clock-offset", 0, "testing only: add this to the clock reported in heartbeats")
	fs.Var(LevelVar(&n.LogLevel, "info"), "log-level", "`level`: debug, info, warn or error")
	fs.StringVar(&n.LogFormat, "log-format", "text", "text or json")
	fs.BoolVar(&n.Pprof, "pprof", false, "also serve Go's profiler under /debug/pprof/ on the --http address")
}

// RegisterTTL adds --heartbeat-ttl, a master's: it applies it to bucket
// nodes, whose TTL every other node reads.
func (n *Node) RegisterTTL(fs *flag.FlagSet) {
	fs.DurationVar(&n.HeartbeatTTL, "heartbeat-ttl", 3*time.Second, "TTL of bucket nodes: a node is offline this long after its last heartbeat")
}

// Validate checks the node flags against each other.
func (n *Node) Validate() error {
	if err := mesh.ValidateNodeID(n.ID); err != nil {
		return fmt.Errorf("--id: %w", err)
	}
	if n.HTTP != "" {
		if err := metrics.ValidateAddr("--http", n.HTTP); err != nil {
			return err
		}
	}
	if n.Pprof && n.HTTP == "" {
		return fmt.Errorf("--pprof: the profiler is served on the --http address, which is off (\"\")")
	}
	if n.TTLFromBucket {
		if n.HeartbeatInterval <= 0 {
			return fmt.Errorf("--heartbeat-interval %v: must be positive", n.HeartbeatInterval)
		}
	} else {
		if n.HeartbeatTTL < time.Second {
			return fmt.Errorf("--heartbeat-ttl %v: the server counts TTLs in whole seconds; use 1s or more", n.HeartbeatTTL)
		}
		if n.HeartbeatInterval <= 0 || n.HeartbeatInterval > n.HeartbeatTTL/2 {
			return fmt.Errorf("--heartbeat-interval %v: must be positive and at most half of --heartbeat-ttl %v", n.HeartbeatInterval, n.HeartbeatTTL)
		}
	}
	if n.Lease != 0 && n.Lease < time.Second {
		return fmt.Errorf("--lease %v: the server expires keys in whole seconds; use 1s or more", n.Lease)
	}
	if n.Replicas < 0 || n.Replicas > 5 {
		return fmt.Errorf("--replicas %d: want 0 (3 on a cluster of 3 or more JetStream servers, else 1) or 1-5", n.Replicas)
	}
	if n.Partitions < 0 || n.Partitions > 64 {
		return fmt.Errorf("--partitions %d: want 0 (keep the mesh's; 1 for a new one) or 1-64", n.Partitions)
	}
	if tags, err := ParseTags(n.PartitionTags); err != nil {
		return err
	} else if len(tags) > 0 && n.Replicas == 0 {
		// Chosen replicas would try 3 copies in a tag that may hold one
		// server, and fall back to 1 for every asset of the mesh.
		return fmt.Errorf("--partition-tags needs --replicas: each tag must hold that many servers")
	}
	if n.Priority < 0 || n.Priority > 100 {
		return fmt.Errorf("--priority %d: want 0-100", n.Priority)
	}
	if _, err := ParseLevel(n.LogLevel); err != nil {
		return err
	}
	if n.LogFormat != "text" && n.LogFormat != "json" {
		return fmt.Errorf("--log-format %q: want text or json", n.LogFormat)
	}
	return nil
}

// Given records which flags of fs were set (on the command line or, after
// [ApplyEnv], by their variables) in n.Set.
func (n *Node) Given(fs *flag.FlagSet) {
	n.Set = map[string]bool{}
	fs.Visit(func(f *flag.Flag) { n.Set[f.Name] = true })
}

// ParseLevel parses --log-level.
func ParseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, fmt.Errorf("--log-level %q: want debug, info, warn or error", s)
	}
	return l, nil
}

// LevelVar sets *p to def and returns a --log-level flag value (for flag
// and pflag alike) that checks a level as it is set: a bad one from
// CRAWLMESH_LOG_LEVEL is then refused naming the variable, not the flag.
func LevelVar(p *string, def string) *LevelValue {
	*p = def
	return &LevelValue{p}
}

// LevelValue is the value of a --log-level flag (see [LevelVar]).
type LevelValue struct{ p *string }

func (v *LevelValue) String() string {
	if v == nil || v.p == nil {
		return "" // flag's zero value, for its defaults
	}
	return *v.p
}

func (v *LevelValue) Set(s string) error {
	if _, err := ParseLevel(s); err != nil {
		return errors.New("want debug, info, warn or error") // the flag or variable is named by the caller
	}
	*v.p = s
	return nil
}

// Type is pflag's name of the value.
func (v *LevelValue) Type() string { return "string" }

// Logger builds the process logger writing to w; its level is n.Level.
func (n *Node) Logger(w io.Writer) *slog.Logger {
	lvl, _ := ParseLevel(n.LogLevel)
	if n.Level == nil {
		n.Level = new(slog.LevelVar)
	}
	n.Level.Set(lvl)
	o := &slog.HandlerOptions{Level: n.Level}
	if n.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, o))
	}
	return slog.New(slog.NewTextHandler(w, o))
}

// Clock returns time.Now shifted by ClockOffset.
func (n *Node) Clock() func() time.Time {
	off := n.ClockOffset
	if off == 0 {
		return time.Now
	}
	return func() time.Time { return time.Now().Add(off) }
}

// ParseTags splits --partition-tags: comma-separated JetStream server
// tags, lower-cased as the server keeps them; "" is none.
func ParseTags(v string) ([]string, error) {
	if strings.TrimSpace(v) == "" {
		return nil, nil
	}
	var out []string
	for i, t := range strings.Split(v, ",") {
		t = strings.ToLower(strings.TrimSpace(t))
		if t == "" || strings.ContainsAny(t, " \t*>") {
			return nil, fmt.Errorf("--partition-tags %q: tag %d is %q; want server tags separated by commas (no blanks, '*' or '>')", v, i+1, t)
		}
		out = append(out, t)
	}
	return out, nil
}
