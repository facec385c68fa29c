package mesh

import (
	"fmt"
	"strconv"
)

// Command names.
const (
	CmdPing           = "ping"
	CmdPause          = "pause"
	CmdResume         = "resume"
	CmdDrain          = "drain"
	CmdShutdown       = "shutdown"
	CmdSetConcurrency = "set-concurrency"
	CmdStepDown       = "step-down" // a leading master hands leadership over
	CmdScale          = "scale"     // a host agent runs N workers
)

// MaxAgentWorkers is the most worker processes one host agent runs.
const MaxAgentWorkers = 256

// Command is the JSON body of a command request.
type Command struct {
	Name string `json:"cmd"`
	// N is the argument of set-concurrency and scale.
	N int `json:"n,omitempty"`
	// Term is the sender's leadership term (fencing token); 0 from operators.
	Term uint64 `json:"term,omitempty"`
}

// MaxConcurrency is the most tasks a worker may hold in flight, by
// set-concurrency and by the cluster configuration's concurrency alike.
const MaxConcurrency = 10000

// Validate checks the command name and its argument.
func (c Command) Validate() error {
	switch c.Name {
	case CmdPing, CmdPause, CmdResume, CmdDrain, CmdShutdown, CmdStepDown:
		return nil
	case CmdSetConcurrency:
		if c.N < 1 || c.N > MaxConcurrency {
			return fmt.Errorf("set-concurrency %d: want 1..%d", c.N, MaxConcurrency)
		}
		return nil
	case CmdScale:
		if c.N < 0 || c.N > MaxAgentWorkers {
			return fmt.Errorf("scale %d: want 0..%d workers", c.N, MaxAgentWorkers)
		}
		return nil
	case "":
		return fmt.Errorf("empty command")
	default:
		return fmt.Errorf("unknown command %q", c.Name)
	}
}

func (c Command) String() string {
	if c.Name == CmdSetConcurrency || c.Name == CmdScale {
		return c.Name + " " + strconv.Itoa(c.N)
	}
	return c.Name
}

// Reply is the JSON body of a command reply.
type Reply struct {
	Node  string `json:"node"`
	Role  string `json:"role"`
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`
	State string `json:"state,omitempty"`
	// Concurrency is the node's task capacity after the command.
	Concurrency int `json:"concurrency,omitempty"`
	// Workers is a host agent's number of worker processes after the command.
	Workers int `json:"workers,omitempty"`
	// Timeout is never sent by a node: a broadcast's caller sets it (with
	// OK false and Error) on the entry it adds for a node that was online
	// but did not answer in time.
	Timeout bool `json:"timeout,omitempty"`
	// NA marks a refusal of a command that is not for this node: its role
	// does not act on it (a master asked to pause), or it is a standby
	// master asked to step down. Sent to all, such a refusal is no failure.
	NA bool `json:"na,omitempty"`
}
