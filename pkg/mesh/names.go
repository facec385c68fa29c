package mesh

import (
	"errors"
	"fmt"
	"regexp"
	"runtime/debug"
	"strings"
)

// Version is the crawlmesh release, reported in heartbeats.
// Overridden at link time with -ldflags "-X github.com/crawlmesh/crawlmesh/pkg/mesh.Version=...".
// A build without it (go build in a checkout) adds the commit Go stamped
// into the binary, so nodes shows how far a rolling upgrade has got
// (found by review: every build said 0.1.0-dev).
var Version = "0.1.0-dev" // a constant, so -X can set it

func init() { Version = devVersion(Version, buildSettings()) }

func buildSettings() []debug.BuildSetting {
	if bi, ok := debug.ReadBuildInfo(); ok {
		return bi.Settings
	}
	return nil
}

// devVersion is v with "+<commit>" (and ".dirty" for uncommitted changes)
// from the build's VCS stamp, when v is a development version and there
// is a stamp.
func devVersion(v string, settings []debug.BuildSetting) string {
	if !strings.HasSuffix(v, "-dev") {
		return v
	}
	var rev, dirty string
	for _, s := range settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = ".dirty"
			}
		}
	}
	if len(rev) < 12 {
		return v
	}
	return v + "+" + rev[:12] + dirty
}

// NodesBucket is the KV bucket that holds one heartbeat key per live node.
const NodesBucket = "nodes"

// Roles a node can have.
const (
	RoleMaster = "master"
	RoleWorker = "worker"
	// RoleAgent is a host agent (crawlmesh agent): it supervises worker
	// processes on its machine and crawls nothing itself.
	RoleAgent = "agent"
)

// RoleArticle is a role with its article, for messages: "an agent", "a worker".
func RoleArticle(role string) string {
	if role != "" && strings.ContainsRune("aeiou", rune(role[0])) {
		return "an " + role
	}
	return "a " + role
}

// RoleOperator is the crawlmesh CLI's role: it has no heartbeat, but it
// has its own NATS user and inbox prefix.
const RoleOperator = "operator"

// InboxPrefix is where a connection of role receives its replies
// (JetStream API, requests, KV watches) instead of the shared _INBOX: the
// server config can then let each role read its own replies only.
func InboxPrefix(role string) string { return "_INBOX_" + role }

// Command subjects. A node answers requests on its own subject and on the
// broadcast subject; ids are single subject tokens (see [ValidateNodeID]).
const (
	commandPrefix = "crawlmesh.cmd"
	// CommandAllSubject reaches every node.
	CommandAllSubject = commandPrefix + ".all"
	// ViewSubject is answered by masters with their cluster view.
	ViewSubject = "crawlmesh.master.view"
)

// CommandSubject is the subject node id answers commands on.
func CommandSubject(id string) string { return commandPrefix + ".node." + id }

// ErrBadNodeID is wrapped by [ValidateNodeID].
var ErrBadNodeID = errors.New("bad node id")

var nodeIDRe = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// ValidateNodeID checks that id can be both a KV key and one subject token.
func ValidateNodeID(id string) error {
	if !nodeIDRe.MatchString(id) {
		return fmt.Errorf("%w %q: use 1-64 letters, digits, '-' or '_'", ErrBadNodeID, id)
	}
	return nil
}

// NodeIDFromHostname turns a hostname into a valid node id: the first label
// (hosts are usually unique by it within one mesh) with invalid characters
// replaced by '-'.
func NodeIDFromHostname(h string) string {
	h, _, _ = strings.Cut(h, ".")
	var b strings.Builder
	for _, r := range h {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_':
			b.WriteRune(r)
		default:
			b.WriteByte('-')
		}
		if b.Len() == 64 {
			break
		}
	}
	if b.Len() == 0 {
		return "node"
	}
	return b.String()
}
