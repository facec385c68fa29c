package httpapi

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/crawlmesh/crawlmesh/pkg/clusterview"
	"github.com/crawlmesh/crawlmesh/pkg/mesh"
	"github.com/crawlmesh/crawlmesh/streams"
	"github.com/crawlmesh/crawlmesh/streams/streamstest"
)

// TestConfigAPI: the routes the console's config page uses, on a real
// bucket config: reads are open, writes need the token, a bad value is
// refused naming the key and stores nothing, and a node's effective values
// come with their sources (what it reports in its heartbeat when online,
// else resolved from the bucket).
func TestConfigAPI(t *testing.T) {
	nc, js := streamstest.Start(t, streams.Options{})
	const token = "0123456789abcdef"
	reported := &mesh.NodeConfig{Rev: 9, Values: map[string]mesh.ConfigValue{"concurrency": {Value: "7", Source: "role"}}}
	nodes := func() []clusterview.Node {
		return []clusterview.Node{
			{ID: "w1", Role: "worker", Online: true, Heartbeat: mesh.Heartbeat{Config: reported}},
			{ID: "w2", Role: "worker", Online: false},
		}
	}
	h := Handler(Config{Token: token, NC: nc, JS: js, Nodes: nodes})
	do := func(method, path, auth, body string) (int, string) {
		t.Helper()
		req := httptest.NewRequest(method, path, strings.NewReader(body))
		if auth != "" {
			req.Header.Set("Authorization", "Bearer "+auth)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec.Code, rec.Body.String()
	}
	for _, tc := range []struct {
		method, path, auth, body string
		want                     int
		substr                   string
	}{
		{"PUT", "/api/v1/config/role/worker/concurrency", "", `{"value":"7"}`, 401, "token"},
		{"PUT", "/api/v1/config/role/worker/concurrency", token, `{"value":"-1"}`, 400, `concurrency \"-1\": out of range`},
		{"PUT", "/api/v1/config/role/worker/colour", token, `{"value":"red"}`, 400, `unknown config key \"colour\"`},
		{"PUT", "/api/v1/config/role/master/concurrency", token, `{"value":"4"}`, 400, "not to role master"},
		{"PUT", "/api/v1/config/role/agent/concurrency", token, `{"value":"4"}`, 400, "--role"},
		{"PUT", "/api/v1/config/node/w.1/concurrency", token, `{"value":"4"}`, 400, "node id"},
		{"PUT", "/api/v1/config/cluster/heartbeat_interval", token, `{"value":"2s"}`, 400, "TTL"},
		{"PUT", "/api/v1/config/cluster/concurrency", token, `{}`, 400, "value"},
		{"GET", "/api/v1/config", "", "", 200, `"entries":[]`},
		{"PUT", "/api/v1/config/role/worker/concurrency", token, `{"value":"7"}`, 200, `"value":"7"`},
		{"PUT", "/api/v1/config/node/w2/concurrency", token, `{"value":"3"}`, 200, `"target":"w2"`},
		{"PUT", "/api/v1/config/cluster/request_timeout", token, `{"value":"1500ms"}`, 200, `"value":"1.5s"`},
		{"GET", "/api/v1/config/nodes/w1", "", "", 200, `"rev":9`},
		{"GET", "/api/v1/config/nodes/w2", "", "", 200, `"concurrency":{"value":"3","source":"node"}`},
		{"GET", "/api/v1/config/nodes/w9", "", "", 404, "no node w9"},
		{"DELETE", "/api/v1/config/node/w2/concurrency", "", "", 401, "token"},
		{"DELETE", "/api/v1/config/node/w2/concurrency", token, "", 200, "removed"},
		{"DELETE", "/api/v1/config/node/w2/concurrency", token, "", 404, "not set"},
	} {
		code, body := do(tc.method, tc.path, tc.auth, tc.body)
		if code != tc.want || !strings.Contains(body, tc.substr) {
			t.Errorf("%s %s %s: %d %s; want %d with %q", tc.method, tc.path, tc.body, code, body, tc.want, tc.substr)
		}
	}
	code, body := do("GET", "/api/v1/config", "", "")
	var got ConfigReply
	if err := json.Unmarshal([]byte(body), &got); code != http.StatusOK || err != nil {
		t.Fatalf("GET /api/v1/config: %d %v %s", code, err, body)
	}
	if len(got.Keys) != 11 || len(got.Entries) != 2 || got.Cluster["request_timeout"] != (mesh.ConfigValue{Value: "1.5s", Source: "cluster"}) {
		t.Errorf("GET /api/v1/config: %d keys, entries %+v, cluster %+v", len(got.Keys), got.Entries, got.Cluster)
	}
	if len(got.Nodes) != 2 || got.Nodes[1].Values["concurrency"] != (mesh.ConfigValue{Value: "7", Source: "role"}) ||
		got.Nodes[1].Values["user_agent"].Source != "flag or default" {
		t.Errorf("GET /api/v1/config nodes: %+v", got.Nodes)
	}
}
