package crawlctl

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/crawlmesh/crawlmesh/pkg/clusterview"
	"github.com/crawlmesh/crawlmesh/pkg/mesh"
	"github.com/crawlmesh/crawlmesh/pkg/spec"
)

// ApplySpider stores spider s in bucket spiders (the CLI's spider apply
// and the HTTP API's). A spec equal to the stored one is not written
// again, so re-applying it (a CI job, GitOps) keeps the anchor of its
// `@every` schedule, which is the entry's time (found by review: an apply
// every 10 s kept an @every 30s schedule from ever firing). changed says
// whether it was written.
func ApplySpider(ctx context.Context, kv jetstream.KeyValue, s *spec.Spec) (rev uint64, changed bool, err error) {
	b, err := json.Marshal(s)
	if err != nil {
		return 0, false, fmt.Errorf("spider %s: %w", s.Name, err)
	}
	if e, err := kv.Get(ctx, s.Name); err == nil && bytes.Equal(e.Value(), b) {
		return e.Revision(), false, nil
	} else if err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return 0, false, fmt.Errorf("read spider %s: %w", s.Name, err)
	}
	rev, err = kv.Put(ctx, s.Name, b)
	if errors.Is(err, nats.ErrMaxPayload) {
		return 0, false, fmt.Errorf("store spider %s: its spec is %d bytes, more than the NATS server takes in one message (its max_payload): keep long lists of start URLs in a seeds file (crawlmesh files put FILE, then crawl start %s --seeds-file FILE)",
			s.Name, len(b), s.Name)
	}
	if err != nil {
		return 0, false, fmt.Errorf("store spider %s: %w", s.Name, err)
	}
	return rev, true, nil
}

// GoSpiderWarning says when spider s names a Go spider (go:) that no
// online worker has compiled in, among workers that list theirs (older
// versions do not): its crawls would fail every page. "" when it is
// fine or cannot be told. A warning, not a refusal: a worker built with
// it may start later.
func GoSpiderWarning(s *spec.Spec, nodes []clusterview.Node) string {
	if s.Go == "" {
		return ""
	}
	have := map[string]bool{}
	listed := 0
	for _, n := range nodes {
		if n.Role != mesh.RoleWorker || !n.Online || n.Heartbeat.GoSpiders == nil {
			continue
		}
		listed++
		for _, g := range n.Heartbeat.GoSpiders {
			if g == s.Go {
				return ""
			}
			have[g] = true
		}
	}
	if listed == 0 {
		return ""
	}
	return fmt.Sprintf("no online worker has the Go spider %q (they have: %s): its crawls fail until a worker built with it runs",
		s.Go, strings.Join(slices.Sorted(maps.Keys(have)), ", "))
}
