package sink

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/crawlmesh/crawlmesh/pkg/mesh"
)

// Managing sinks in bucket sinks: the one implementation behind
// `crawlmesh sink add|ls|rm` and the HTTP API's /api/v1/sinks.

// Spec is what a person gives to add a sink: the CLI's flags, the body of
// PUT /api/v1/sinks/{name}. Zero values take the defaults.
type Spec struct {
	Name      string        `json:"-"`
	Postgres  string        `json:"postgres,omitempty"` // URL; password only as ${env:NAME}
	Table     string        `json:"table,omitempty"`
	Webhook   string        `json:"webhook,omitempty"` // URL
	Spiders   []string      `json:"spiders,omitempty"`
	BatchSize int           `json:"batch_size,omitempty"`
	BatchWait time.Duration `json:"-"`
	GiveUp    time.Duration `json:"-"`
	Timeout   time.Duration `json:"-"`
}

// ErrExists and ErrNotFound are returned by Add and Remove.
var (
	ErrExists   = errors.New("sink exists")
	ErrNotFound = errors.New("no such sink")
)

// kindError is an error of a kind (errors.Is) with its own message.
type kindError struct {
	kind error
	msg  string
}

func (e kindError) Error() string { return e.msg }
func (e kindError) Unwrap() error { return e.kind }

// Build turns a spec into a validated sink with its defaults; its errors
// wrap ErrInvalid and never repeat a secret.
func Build(sp Spec, now time.Time) (Sink, error) {
	s := Sink{Name: sp.Name, Spiders: sp.Spiders, BatchSize: sp.BatchSize, BatchWait: Duration(sp.BatchWait),
		CreatedAt: now.UTC()}
	switch {
	case sp.Postgres != "" && sp.Webhook != "":
		return s, fmt.Errorf("%w: give --postgres or --webhook, not both", ErrInvalid)
	case sp.Postgres != "":
		if sp.GiveUp != 0 || sp.Timeout != 0 {
			return s, fmt.Errorf("%w: --give-up and --request-timeout are webhook settings", ErrInvalid)
		}
		s.Type, s.Postgres = TypePostgres, &Postgres{URL: sp.Postgres, Table: sp.Table}
	case sp.Webhook != "":
		if sp.Table != "" {
			return s, fmt.Errorf("%w: --table is a --postgres setting", ErrInvalid)
		}
		s.Type, s.Webhook = TypeWebhook, &Webhook{URL: sp.Webhook, GiveUp: Duration(sp.GiveUp), Timeout: Duration(sp.Timeout)}
	default:
		return s, fmt.Errorf("%w: give --postgres URL or --webhook URL", ErrInvalid)
	}
	s.Normalize()
	if err := s.Validate(); err != nil {
		return s, err
	}
	return s, nil
}

// Add stores a new sink (built by Build); a sink of that name is ErrExists.
func Add(ctx context.Context, kv jetstream.KeyValue, s Sink) error {
	if err := s.Validate(); err != nil {
		return err
	}
	b, err := json.Marshal(s)
	if err != nil {
		return err
	}
	if _, err := kv.Create(ctx, s.Name, b); err != nil {
		if errors.Is(err, jetstream.ErrKeyExists) {
			return kindError{ErrExists, fmt.Sprintf("sink %s exists (crawlmesh sink rm %s first)", s.Name, s.Name)}
		}
		return fmt.Errorf("store sink %s: %w", s.Name, err)
	}
	return nil
}

// Remove deletes a sink; the leading master then drops its consumer and
// status.
func Remove(ctx context.Context, kv jetstream.KeyValue, name string) error {
	if strings.HasPrefix(name, StatusPrefix) || !nameRe.MatchString(name) {
		return kindError{ErrNotFound, "no sink " + name + " (crawlmesh sink ls lists them)"}
	}
	if _, err := kv.Get(ctx, name); errors.Is(err, jetstream.ErrKeyNotFound) {
		return kindError{ErrNotFound, "no sink " + name + " (crawlmesh sink ls lists them)"}
	} else if err != nil {
		return err
	}
	if err := kv.Purge(ctx, name); err != nil {
		return fmt.Errorf("remove sink %s: %w", name, err)
	}
	return nil
}

// Row is one sink as listed: the sink, its destination redacted, its
// state in a word, its status and its consumer's lag.
type Row struct {
	Sink
	Target string  `json:"target"`
	State  string  `json:"state"`
	Lag    *uint64 `json:"lag"` // nil: the consumer does not exist yet
	// Error is the error a listing shows: the last one while the sink
	// fails ("needs a fix: ..." when it will not heal by itself), else "".
	Error  string  `json:"error,omitempty"`
	Status *Status `json:"status,omitempty"`
}

// StateWaiting is a sink no master has started yet.
const StateWaiting = "waiting"

// List reads every sink by name with its status and its consumer's lag.
func List(ctx context.Context, js jetstream.JetStream, kv jetstream.KeyValue) ([]Row, error) {
	sinks, sts, err := ReadAll(ctx, kv)
	if err != nil {
		return nil, err
	}
	sort.Slice(sinks, func(i, j int) bool { return sinks[i].Name < sinks[j].Name })
	rows := []Row{}
	for _, s := range sinks {
		r := Row{Sink: s, Target: s.Target(), State: StateWaiting}
		if st, ok := sts[s.Name]; ok {
			r.Status, r.State = &st, st.State
			if st.LastError != "" && st.State == StateFailing {
				r.Error = st.LastError
				if st.Permanent {
					r.Error = "needs a fix: " + r.Error
				}
			}
		}
		if ci, err := js.Consumer(ctx, mesh.ResultsStream, mesh.SinkConsumer(s.Name)); err == nil {
			info := ci.CachedInfo()
			lag := info.NumPending + uint64(info.NumAckPending)
			r.Lag = &lag
		}
		rows = append(rows, r)
	}
	return rows, nil
}
