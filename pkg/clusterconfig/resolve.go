package clusterconfig

import (
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/crawlmesh/crawlmesh/pkg/envsubst"
	"github.com/crawlmesh/crawlmesh/pkg/mesh"
)

// Levels of a stored value, and the sources of an effective one.
const (
	LevelCluster  = "cluster"
	LevelRole     = "role"
	LevelNode     = "node"
	SourceFlag    = "flag"
	SourceDefault = "default"
)

// Scope is where a value is stored: the whole cluster, a role, or a node.
type Scope struct {
	Level  string `json:"level"`
	Target string `json:"target,omitempty"` // role or node id; "" for cluster
}

// Cluster is the cluster-wide scope.
func Cluster() Scope { return Scope{Level: LevelCluster} }

// ScopeFor is the scope the CLI's --node and --role flags name: both empty
// is the cluster; giving both is an error.
func ScopeFor(node, role string) (Scope, error) {
	switch {
	case node != "" && role != "":
		return Scope{}, fmt.Errorf("give --node or --role, not both")
	case node != "":
		if err := mesh.ValidateNodeID(node); err != nil {
			return Scope{}, fmt.Errorf("--node: %w", err)
		}
		return Scope{Level: LevelNode, Target: node}, nil
	case role != "":
		if role != mesh.RoleWorker && role != mesh.RoleMaster {
			return Scope{}, fmt.Errorf("--role %q: want %s or %s", role, mesh.RoleWorker, mesh.RoleMaster)
		}
		return Scope{Level: LevelRole, Target: role}, nil
	}
	return Cluster(), nil
}

// String is how the CLI shows the scope: cluster, role worker, node w1.
func (s Scope) String() string {
	if s.Level == LevelCluster {
		return LevelCluster
	}
	return s.Level + " " + s.Target
}

// Key is the bucket key of key at s.
func (s Scope) Key(key string) string {
	if s.Level == LevelCluster {
		return LevelCluster + "." + key
	}
	return s.Level + "." + s.Target + "." + key
}

// ParseKey splits a bucket key into its scope and config key.
func ParseKey(k string) (Scope, string, error) {
	parts := strings.Split(k, ".")
	switch {
	case len(parts) == 2 && parts[0] == LevelCluster:
		return Cluster(), parts[1], nil
	case len(parts) == 3 && (parts[0] == LevelRole || parts[0] == LevelNode):
		return Scope{Level: parts[0], Target: parts[1]}, parts[2], nil
	}
	return Scope{}, "", fmt.Errorf("bucket %s key %q: want cluster.KEY, role.ROLE.KEY or node.ID.KEY", mesh.ConfigBucket, k)
}

// Base is what a process has before the bucket: for each key it sets by
// flag or environment, the value and source flag; keys missing take the
// table's default.
type Base map[string]mesh.ConfigValue

// Flag records a value a process was given: source flag when set is true
// (a flag or its CRAWLMESH_* variable), else default.
func (b Base) Flag(key, value string, set bool) {
	src := SourceDefault
	if set {
		src = SourceFlag
	}
	if v, err := Validate(key, value); err == nil {
		value = v
	}
	b[key] = mesh.ConfigValue{Value: value, Source: src}
}

// Resolve returns the effective values for node id of role from stored
// (bucket key → value) over base: node > role > cluster > base > default.
// Only keys that apply to role are returned. A stored value that fails
// validation is skipped for the next level and reported in errs; so is,
// when lookup (the node's environment) is given, one whose ${env:NAME}
// references the node cannot expand: one worker's missing variable must
// not fail every crawl it takes part in.
func Resolve(stored map[string]string, id, role string, base Base, lookup func(string) (string, bool)) (values Effective, errs []string) {
	values = Effective{}
	levels := []Scope{{Level: LevelNode, Target: id}, {Level: LevelRole, Target: role}, Cluster()}
	for _, k := range keys {
		if !k.AppliesTo(role) {
			continue
		}
		var got *mesh.ConfigValue
		for _, sc := range levels {
			raw, ok := stored[sc.Key(k.Name)]
			if !ok {
				continue
			}
			v, err := Validate(k.Name, raw)
			if err != nil {
				errs = append(errs, fmt.Sprintf("%s: %v; not applied", sc, err))
				continue
			}
			if name := unsetRef(v, lookup); name != "" {
				errs = append(errs, fmt.Sprintf("%s: %s: ${env:%s} is not set on this node; not applied", sc, k.Name, name))
				continue
			}
			got = &mesh.ConfigValue{Value: v, Source: sc.Level}
			break
		}
		if got == nil {
			if b, ok := base[k.Name]; ok {
				got = &b
			} else {
				got = &mesh.ConfigValue{Value: k.Default, Source: SourceDefault}
			}
		}
		values[k.Name] = *got
	}
	return values, errs
}

// unsetRef is the first ${env:NAME} of v that lookup cannot expand ("" if
// none, or no lookup).
func unsetRef(v string, lookup func(string) (string, bool)) string {
	if lookup == nil {
		return ""
	}
	for _, name := range envsubst.Refs(v) {
		if _, ok := lookup(name); !ok {
			return name
		}
	}
	return ""
}

// Effective maps each key to the value in effect on a node. Its values
// have passed [Validate], so the accessors cannot fail on them; a key the
// node does not have reads as the zero value.
type Effective map[string]mesh.ConfigValue

// Int reads an int or bytes key.
func (e Effective) Int(key string) int { n, _ := strconv.Atoi(e[key].Value); return n }

// Duration reads a duration key.
func (e Effective) Duration(key string) time.Duration {
	d, _ := time.ParseDuration(e[key].Value)
	return d
}

// Bool reads a bool key.
func (e Effective) Bool(key string) bool { b, _ := strconv.ParseBool(e[key].Value); return b }

// String reads a string key.
func (e Effective) String(key string) string { return e[key].Value }

// List reads a list key.
func (e Effective) List(key string) []string {
	if e[key].Value == "" {
		return nil
	}
	return strings.Split(e[key].Value, ",")
}

// Level reads a log level key.
func (e Effective) Level(key string) slog.Level {
	var l slog.Level
	_ = l.UnmarshalText([]byte(e[key].Value))
	return l
}
