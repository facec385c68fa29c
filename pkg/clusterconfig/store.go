package clusterconfig

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/crawlmesh/crawlmesh/pkg/kvscan"
	"github.com/crawlmesh/crawlmesh/pkg/mesh"
)

// ErrNotSet is returned by [Remove] for a key not stored at the scope.
var ErrNotSet = errors.New("config: not set")

// Entry is one stored value.
type Entry struct {
	Scope    Scope     `json:"scope"`
	Key      string    `json:"key"`
	Value    string    `json:"value"`
	Revision uint64    `json:"revision"`
	Updated  time.Time `json:"updated"`
	// Error says why nodes will not apply this value (a value stored by
	// hand or by another version); empty when it is valid.
	Error string `json:"error,omitempty"`
}

// Check validates value for key at scope s and returns its canonical text:
// the key is known, the value in range, the scope's role applies the key,
// and a heartbeat interval fits nodesTTL (the nodes bucket's TTL; 0 skips
// that check).
func Check(s Scope, key, value string, nodesTTL time.Duration) (string, error) {
	k, err := Lookup(key)
	if err != nil {
		return "", err
	}
	if s.Level == LevelRole && !k.AppliesTo(s.Target) {
		return "", fmt.Errorf("%w: %s applies to %v only, not to role %s", ErrBadValue, key, k.Roles, s.Target)
	}
	v, err := Validate(key, value)
	if err != nil {
		return "", err
	}
	if key == HeartbeatInterval {
		d, _ := time.ParseDuration(v)
		if err := CheckInterval(d, nodesTTL); err != nil {
			return "", err
		}
	}
	return v, nil
}

// Set validates (see [Check]) and stores value for key at s.
func Set(ctx context.Context, kv jetstream.KeyValue, s Scope, key, value string, nodesTTL time.Duration) (Entry, error) {
	v, err := Check(s, key, value, nodesTTL)
	if err != nil {
		return Entry{}, err
	}
	rev, err := kv.PutString(ctx, s.Key(key), v)
	if err != nil {
		return Entry{}, fmt.Errorf("store %s in bucket %s: %w", s.Key(key), mesh.ConfigBucket, err)
	}
	return Entry{Scope: s, Key: key, Value: v, Revision: rev, Updated: time.Now().UTC()}, nil
}

// Remove deletes key at s, so the next level applies again.
func Remove(ctx context.Context, kv jetstream.KeyValue, s Scope, key string) error {
	if _, err := Lookup(key); err != nil {
		return err
	}
	if _, err := kv.Get(ctx, s.Key(key)); errors.Is(err, jetstream.ErrKeyNotFound) {
		return fmt.Errorf("%w: %s is not set at %s", ErrNotSet, key, s)
	} else if err != nil {
		return fmt.Errorf("read %s: %w", s.Key(key), err)
	}
	// A delete, not a purge: watchers see it, and history keeps what it was.
	if err := kv.Delete(ctx, s.Key(key)); err != nil {
		return fmt.Errorf("delete %s from bucket %s: %w", s.Key(key), mesh.ConfigBucket, err)
	}
	return nil
}

// List returns every stored value, cluster first, then roles, then nodes.
func List(ctx context.Context, kv jetstream.KeyValue) ([]Entry, error) {
	es, err := kvscan.Entries(ctx, kv, mesh.ConfigBucket)
	if err != nil {
		return nil, err
	}
	var out []Entry
	for _, e := range es {
		s, key, err := ParseKey(e.Key())
		en := Entry{Scope: s, Key: key, Value: string(e.Value()), Revision: e.Revision(), Updated: e.Created().UTC()}
		if err == nil {
			_, err = Validate(key, en.Value)
		}
		if err != nil {
			en.Error = err.Error()
			if key == "" {
				en.Key = e.Key()
			}
		}
		out = append(out, en)
	}
	sortEntries(out)
	return out, nil
}

func sortEntries(es []Entry) {
	order := map[string]int{LevelCluster: 0, LevelRole: 1, LevelNode: 2}
	sort.Slice(es, func(i, j int) bool {
		a, b := es[i], es[j]
		if a.Scope.Level != b.Scope.Level {
			return order[a.Scope.Level] < order[b.Scope.Level]
		}
		if a.Scope.Target != b.Scope.Target {
			return a.Scope.Target < b.Scope.Target
		}
		return a.Key < b.Key
	})
}

// Stored reads every stored value as bucket key → value, for [Resolve].
func Stored(es []Entry) map[string]string {
	m := make(map[string]string, len(es))
	for _, e := range es {
		if e.Scope.Level != "" {
			m[e.Scope.Key(e.Key)] = e.Value
		}
	}
	return m
}

// SourceUnknown is the source of a value an offline node did not report:
// its flag or the default; the value shown is the default.
const SourceUnknown = "flag or default"

// NodeView is a node's configuration as seen from outside the node: what
// its heartbeat reports when it is online, else what it would resolve
// from the stored values.
type NodeView struct {
	Node   string `json:"node"`
	Role   string `json:"role"`
	Online bool   `json:"online"`
	// Rev is the config revision the node applied (online nodes).
	Rev    uint64                      `json:"rev"`
	Values map[string]mesh.ConfigValue `json:"values"`
	Errors []string                    `json:"errors,omitempty"`
}

// View is node id's configuration: reported (its heartbeat's config, when
// it is online and reports one) or else resolved from entries for role.
func View(entries []Entry, id, role string, reported *mesh.NodeConfig) NodeView {
	v := NodeView{Node: id, Role: role, Online: reported != nil}
	if reported != nil {
		v.Rev, v.Values, v.Errors = reported.Rev, reported.Values, reported.Errors
		return v
	}
	eff, errs := Resolve(Stored(entries), id, role, nil, nil) // not this machine's environment: the node's
	for k, cv := range eff {
		if cv.Source == SourceDefault {
			cv.Source = SourceUnknown
			eff[k] = cv
		}
	}
	v.Values, v.Errors = eff, errs
	return v
}

// ClusterView is the cluster-wide value of every key: stored at level
// cluster, else the default (a node's flag may differ).
func ClusterView(entries []Entry) map[string]mesh.ConfigValue {
	out := map[string]mesh.ConfigValue{}
	stored := Stored(entries)
	for _, k := range keys {
		if raw, ok := stored[Cluster().Key(k.Name)]; ok {
			if v, err := Validate(k.Name, raw); err == nil {
				out[k.Name] = mesh.ConfigValue{Value: v, Source: LevelCluster}
				continue
			}
		}
		out[k.Name] = mesh.ConfigValue{Value: k.Default, Source: SourceDefault}
	}
	return out
}

// Persists reports whether cm changes a key of the configuration (pause,
// resume, set-concurrency).
func Persists(cm mesh.Command) bool {
	k, _ := commandKey(cm)
	return k != ""
}

func commandKey(cm mesh.Command) (key, value string) {
	switch cm.Name {
	case mesh.CmdPause:
		return Paused, "true"
	case mesh.CmdResume:
		return Paused, "false"
	case mesh.CmdSetConcurrency:
		return Concurrency, strconv.Itoa(cm.N)
	}
	return "", ""
}

// StoreCommand makes pause, resume and set-concurrency survive a restart.
// Sent to one node (all false), each worker that obeyed cm (a reply OK)
// gets the value at its node level, what `config set KEY VALUE --node ID`
// stores. Sent to all, the value goes to the worker role's level, so
// workers that join later or were offline get it too, and node-level
// values of the key are removed, so none keeps an older one: "all" means
// every worker. Either way the value also applies live, to the same effect.
func StoreCommand(ctx context.Context, kv jetstream.KeyValue, cm mesh.Command, all bool, rs []mesh.Reply) error {
	key, value := commandKey(cm)
	if key == "" {
		return nil
	}
	if all {
		return storeForAll(ctx, kv, cm, key, value)
	}
	for _, r := range rs {
		if !r.OK || r.Role != mesh.RoleWorker {
			continue
		}
		s := Scope{Level: LevelNode, Target: r.Node}
		if _, err := Set(ctx, kv, s, key, value, 0); err != nil {
			return fmt.Errorf("%s obeyed %s, but storing %s for a restart failed: %w", r.Node, cm.Name, key, err)
		}
	}
	return nil
}

func storeForAll(ctx context.Context, kv jetstream.KeyValue, cm mesh.Command, key, value string) error {
	// The role's value first: a node whose override goes next moves
	// straight to the commanded value, never back to an older role value.
	role := Scope{Level: LevelRole, Target: mesh.RoleWorker}
	if _, err := Set(ctx, kv, role, key, value, 0); err != nil {
		return fmt.Errorf("the workers obeyed %s, but storing %s for the worker role failed: %w", cm.Name, key, err)
	}
	es, err := List(ctx, kv)
	if err != nil {
		return fmt.Errorf("the workers obeyed %s, but clearing nodes' own %s failed: %w", cm.Name, key, err)
	}
	for _, e := range es {
		if e.Scope.Level != LevelNode || e.Key != key {
			continue
		}
		if err := Remove(ctx, kv, e.Scope, key); err != nil && !errors.Is(err, ErrNotSet) {
			return fmt.Errorf("the workers obeyed %s, but clearing %s's own %s failed: %w", cm.Name, e.Scope.Target, key, err)
		}
	}
	return nil
}

// SetLive is [Set] as operators use it, checked against the live nodes
// (bucket nodes, read once): a value at a node's level that the node's
// role does not apply (concurrency for a master) is refused, as Check
// refuses it for the role itself, and heartbeat_interval is bounded by the
// bucket's TTL. A node that is not online (or a heartbeat that cannot be
// read) is let through: it may be a worker yet to start; offline says so.
func SetLive(ctx context.Context, js jetstream.JetStream, kv jetstream.KeyValue, s Scope, key, value string) (e Entry, offline bool, err error) {
	var ttl time.Duration
	if nodes, nerr := js.KeyValue(ctx, mesh.NodesBucket); nerr == nil {
		if s.Level == LevelNode {
			k, err := Lookup(key)
			if err != nil {
				return Entry{}, false, err
			}
			hbe, gerr := nodes.Get(ctx, s.Target)
			offline = errors.Is(gerr, jetstream.ErrKeyNotFound)
			if gerr == nil {
				if hb, err := mesh.DecodeHeartbeat(hbe.Value()); err == nil && hb.Role != "" && !k.AppliesTo(hb.Role) {
					return Entry{}, false, fmt.Errorf("%w: %s applies to %v only, and node %s is %s", ErrBadValue, key, k.Roles, s.Target, mesh.RoleArticle(hb.Role))
				}
			}
		}
		if st, err := nodes.Status(ctx); err == nil {
			ttl = st.TTL()
		}
	}
	e, err = Set(ctx, kv, s, key, value, ttl) // 0 TTL: the nodes check the value again
	return e, offline, err
}
