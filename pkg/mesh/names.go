package mesh

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// Version is the crawlmesh release, reported in heartbeats.
// Overridden at link time with -ldflags "-X github.com/crawlmesh/crawlmesh/pkg/mesh.Version=...".
var Version = "0.1.0-dev"

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
