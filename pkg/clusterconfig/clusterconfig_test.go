package clusterconfig_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/crawlmesh/crawlmesh/pkg/clusterconfig"
	"github.com/crawlmesh/crawlmesh/pkg/mesh"
	"github.com/crawlmesh/crawlmesh/pkg/natstest"
	"github.com/crawlmesh/crawlmesh/streams"
	"github.com/crawlmesh/crawlmesh/streams/streamstest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestValidate(t *testing.T) {
	tests := []struct {
		key, value, want string
		err              string // substring of the error; "" for none
	}{
		{"concurrency", "7", "7", ""},
		{"concurrency", " 12 ", "12", ""},
		{"concurrency", "-1", "", `concurrency "-1": out of range: want 1-10000`},
		{"concurrency", "0", "", "out of range"},
		{"concurrency", "many", "", `concurrency "many": want a whole number`},
		{"user_agent", "bot/2 (+https://x.example)", "bot/2 (+https://x.example)", ""},
		{"user_agent", "", "", "user_agent"},
		{"user_agent", "a\r\nX-Evil: 1", "", "line break"},
		{"user_agent", "${env:UA}", "", "proxies only"}, // it was sent as it is
		{"request_timeout", "2s", "2s", ""},
		{"request_timeout", "1500ms", "1.5s", ""},
		{"request_timeout", "5", "", "want a duration"},
		{"request_timeout", "20m", "", "out of range"},
		{"max_body", "2MiB", "2097152", ""},
		{"max_body", "4096", "4096", ""},
		{"max_body", "10", "", "out of range"},
		{"max_body", "2GiB", "", "out of range"},
		{"max_body", "9223372036854775807GiB", "", "out of range"},
		{"max_attempts", "5", "5", ""},
		{"max_attempts", "101", "", "out of range"},
		{"retry_backoff", "250ms", "250ms", ""},
		{"proxies", "", "", ""},
		{"proxies", "http://127.0.0.1:3128, socks5://p.example:1080", "http://127.0.0.1:3128,socks5://p.example:1080", ""},
		{"proxies", "http://u:${env:PROXY_PW}@p.example:3128", "http://u:${env:PROXY_PW}@p.example:3128", ""},
		{"proxies", "http://${env:PROXY_USER}:${env:PROXY_PW}@p.example:3128", "http://${env:PROXY_USER}:${env:PROXY_PW}@p.example:3128", ""},
		{"proxies", "http://${env:PROXY_USER}:hunter2@p.example:3128", "", "write it as ${env:NAME}"},
		{"proxies", "http://TOKEN123@p.example:3128", "", "user info in the bucket"},
		{"proxies", "http://p.example:3128/?pass=hunter2", "", "no query"},
		{"proxies", "http://${env:PROXY_USER}@p.example:3128", "http://${env:PROXY_USER}@p.example:3128", ""},
		{"proxies", "${env:PROXY_URL}", "${env:PROXY_URL}", ""},
		{"proxies", "http://u:hunter2@p.example:3128", "", "write it as ${env:NAME}"},
		{"proxies", "ftp://p.example", "", `scheme "ftp"`},
		{"proxies", "http://u:${env:BAD", "", "proxy 1"},
		{"robots_ttl", "10m", "10m0s", ""},
		{"heartbeat_interval", "500ms", "500ms", ""},
		{"heartbeat_interval", "10ms", "", "out of range"},
		{"log_level", "DEBUG", "debug", ""},
		{"log_level", "loud", "", "want debug, info, warn or error"},
		{"paused", "true", "true", ""},
		{"paused", "1", "true", ""},
		{"paused", "maybe", "", "want true or false"},
		{"colour", "red", "", `unknown config key "colour"`},
	}
	for _, tt := range tests {
		t.Run(tt.key+"="+tt.value, func(t *testing.T) {
			got, err := clusterconfig.Validate(tt.key, tt.value)
			if tt.err == "" {
				if err != nil || got != tt.want {
					t.Fatalf("Validate(%q, %q) = %q, %v; want %q", tt.key, tt.value, got, err, tt.want)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Fatalf("Validate(%q, %q) = %q, %v; want an error with %q", tt.key, tt.value, got, err, tt.err)
			}
			if !strings.Contains(err.Error(), tt.key) {
				t.Errorf("error %q does not name the key %s", err, tt.key)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("error %q quotes the proxy password", err)
			}
		})
	}
}

func TestCheckScope(t *testing.T) {
	role := func(r string) clusterconfig.Scope { s, _ := clusterconfig.ScopeFor("", r); return s }
	if _, err := clusterconfig.Check(role("master"), "concurrency", "4", 0); err == nil || !strings.Contains(err.Error(), "not to role master") {
		t.Errorf("concurrency for role master: %v; want refused", err)
	}
	if _, err := clusterconfig.Check(role("master"), "log_level", "debug", 0); err != nil {
		t.Errorf("log_level for role master: %v", err)
	}
	if _, err := clusterconfig.Check(clusterconfig.Cluster(), "heartbeat_interval", "2s", 3*time.Second); err == nil || !strings.Contains(err.Error(), "TTL") {
		t.Errorf("heartbeat_interval 2s with TTL 3s: %v; want refused", err)
	}
	if _, err := clusterconfig.ScopeFor("w1", "worker"); err == nil {
		t.Error("--node and --role together accepted")
	}
	if _, err := clusterconfig.ScopeFor("", "agent"); err == nil {
		t.Error("--role agent accepted")
	}
	if _, err := clusterconfig.ScopeFor("w.1", ""); err == nil {
		t.Error("--node w.1 accepted")
	}
}

func TestResolve(t *testing.T) {
	base := clusterconfig.Base{}
	base.Flag("concurrency", "4", true)
	base.Flag("log_level", "info", false)
	tests := []struct {
		name   string
		stored map[string]string
		id     string
		key    string
		want   mesh.ConfigValue
		errs   int
	}{
		{"default", nil, "w1", "user_agent", mesh.ConfigValue{Value: clusterconfig.DefaultUserAgent, Source: "default"}, 0},
		{"flag", nil, "w1", "concurrency", mesh.ConfigValue{Value: "4", Source: "flag"}, 0},
		{"base default", nil, "w1", "log_level", mesh.ConfigValue{Value: "info", Source: "default"}, 0},
		{"cluster over flag", map[string]string{"cluster.concurrency": "6"}, "w1", "concurrency", mesh.ConfigValue{Value: "6", Source: "cluster"}, 0},
		{"role over cluster", map[string]string{"cluster.concurrency": "6", "role.worker.concurrency": "7"}, "w1", "concurrency", mesh.ConfigValue{Value: "7", Source: "role"}, 0},
		{"node over role", map[string]string{"role.worker.concurrency": "7", "node.w1.concurrency": "2"}, "w1", "concurrency", mesh.ConfigValue{Value: "2", Source: "node"}, 0},
		{"another node's override", map[string]string{"role.worker.concurrency": "7", "node.w2.concurrency": "2"}, "w1", "concurrency", mesh.ConfigValue{Value: "7", Source: "role"}, 0},
		{"another role", map[string]string{"role.master.log_level": "debug"}, "w1", "log_level", mesh.ConfigValue{Value: "info", Source: "default"}, 0},
		{"bad node value falls to role", map[string]string{"role.worker.concurrency": "7", "node.w1.concurrency": "-1"}, "w1", "concurrency", mesh.ConfigValue{Value: "7", Source: "role"}, 1},
		{"bad everywhere falls to flag", map[string]string{"cluster.concurrency": "x", "node.w1.concurrency": "0"}, "w1", "concurrency", mesh.ConfigValue{Value: "4", Source: "flag"}, 2},
		{"stored text is canonical", map[string]string{"cluster.request_timeout": "1500ms"}, "w1", "request_timeout", mesh.ConfigValue{Value: "1.5s", Source: "cluster"}, 0},
		// The node's environment lacks PW (it has USER): that value is the
		// node's mistake, not the mesh's; the next level holds.
		{"unset reference falls to cluster", map[string]string{"cluster.proxies": "http://127.0.0.1:3128", "node.w1.proxies": "http://${env:USER}:${env:PW}@127.0.0.1:3129"},
			"w1", "proxies", mesh.ConfigValue{Value: "http://127.0.0.1:3128", Source: "cluster"}, 1},
		{"set references apply", map[string]string{"node.w1.proxies": "http://${env:USER}@127.0.0.1:3129"},
			"w1", "proxies", mesh.ConfigValue{Value: "http://${env:USER}@127.0.0.1:3129", Source: "node"}, 0},
	}
	env := func(name string) (string, bool) { return "x", name == "USER" }
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			eff, errs := clusterconfig.Resolve(tt.stored, tt.id, mesh.RoleWorker, base, env)
			if got := eff[tt.key]; got != tt.want {
				t.Errorf("%s = %+v; want %+v", tt.key, got, tt.want)
			}
			if len(errs) != tt.errs {
				t.Errorf("errors %q; want %d", errs, tt.errs)
			}
			for _, e := range errs {
				if !strings.Contains(e, tt.key) || !strings.Contains(e, "not applied") {
					t.Errorf("error %q does not name key %s and say it was not applied", e, tt.key)
				}
			}
		})
	}
	// A master gets only the keys masters apply.
	eff, _ := clusterconfig.Resolve(nil, "m1", mesh.RoleMaster, nil, nil)
	if keys := slices.Sorted(func(yield func(string) bool) {
		for k := range eff {
			if !yield(k) {
				return
			}
		}
	}); !slices.Equal(keys, []string{"heartbeat_interval", "log_level"}) {
		t.Errorf("master keys %v", keys)
	}
}

func TestParseKey(t *testing.T) {
	for _, k := range []string{"cluster.paused", "role.worker.concurrency", "node.w-1.user_agent"} {
		s, key, err := clusterconfig.ParseKey(k)
		if err != nil || s.Key(key) != k {
			t.Errorf("ParseKey(%q) = %v %q %v; round trip %q", k, s, key, err, s.Key(key))
		}
	}
	for _, k := range []string{"paused", "cluster.a.b", "host.x.y"} {
		if _, _, err := clusterconfig.ParseKey(k); err == nil {
			t.Errorf("ParseKey(%q) accepted", k)
		}
	}
}

// TestWatcher: against a real bucket config, a node loads what is stored,
// then applies each change; a bad stored value is reported, not applied,
// and the node keeps the next level's value.
func TestWatcher(t *testing.T) {
	_, js := streamstest.Start(t, streams.Options{})
	kv := streamstest.Bucket(t, js, mesh.ConfigBucket)
	ctx := t.Context()
	role := clusterconfig.Scope{Level: clusterconfig.LevelRole, Target: mesh.RoleWorker}
	node := clusterconfig.Scope{Level: clusterconfig.LevelNode, Target: "w1"}
	if _, err := clusterconfig.Set(ctx, kv, role, "concurrency", "7", 0); err != nil {
		t.Fatal(err)
	}
	base := clusterconfig.Base{}
	base.Flag("concurrency", "4", true)
	w := clusterconfig.NewWatcher(kv, "w1", mesh.RoleWorker, base, nil)
	eff, err := w.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := eff.Int("concurrency"); got != 7 {
		t.Fatalf("loaded concurrency %d; want the stored 7", got)
	}

	var mu sync.Mutex
	var applied []clusterconfig.Effective
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- w.Run(runCtx, clusterconfig.Applier{Apply: func(e clusterconfig.Effective) []error {
			mu.Lock()
			defer mu.Unlock()
			applied = append(applied, e)
			if e.String("user_agent") == "refuse/1" {
				return []error{errors.New("user_agent: refused by the node")}
			}
			return nil
		}})
	}()
	last := func() clusterconfig.Effective {
		mu.Lock()
		defer mu.Unlock()
		if len(applied) == 0 {
			return nil
		}
		return applied[len(applied)-1]
	}
	wait := func(what string, cond func(e clusterconfig.Effective) bool) {
		t.Helper()
		natstest.Eventually(t, 5*time.Second, what, func() bool { e := last(); return e != nil && cond(e) })
	}
	wait("first apply with the stored value", func(e clusterconfig.Effective) bool { return e.Int("concurrency") == 7 })

	if _, err := clusterconfig.Set(ctx, kv, node, "concurrency", "2", 0); err != nil {
		t.Fatal(err)
	}
	wait("node override applied", func(e clusterconfig.Effective) bool {
		return e["concurrency"] == mesh.ConfigValue{Value: "2", Source: "node"}
	})
	if err := clusterconfig.Remove(ctx, kv, node, "concurrency"); err != nil {
		t.Fatal(err)
	}
	wait("role value back after rm", func(e clusterconfig.Effective) bool { return e["concurrency"].Source == "role" })
	if err := clusterconfig.Remove(ctx, kv, node, "concurrency"); !errors.Is(err, clusterconfig.ErrNotSet) {
		t.Errorf("second rm: %v; want ErrNotSet", err)
	}

	// A bad value written past the checks (by hand) is reported, and the
	// role's value stays.
	rev, err := kv.PutString(ctx, node.Key("concurrency"), "-3")
	if err != nil {
		t.Fatal(err)
	}
	natstest.Eventually(t, 5*time.Second, "bad value reported", func() bool {
		st := w.Status()
		return st.Rev == rev && len(st.Errors) == 1 && strings.Contains(st.Errors[0], "node w1") && strings.Contains(st.Errors[0], "concurrency")
	})
	if e := last(); e.Int("concurrency") != 7 {
		t.Errorf("concurrency %d after a bad node value; want the role's 7", e.Int("concurrency"))
	}
	// An apply error is reported too.
	if _, err := clusterconfig.Set(ctx, kv, clusterconfig.Cluster(), "user_agent", "refuse/1", 0); err != nil {
		t.Fatal(err)
	}
	natstest.Eventually(t, 5*time.Second, "apply error reported", func() bool {
		return slices.ContainsFunc(w.Status().Errors, func(s string) bool { return strings.Contains(s, "refused by the node") })
	})
	es, err := clusterconfig.List(ctx, kv)
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != 3 || es[0].Scope.Level != "cluster" || es[2].Error == "" {
		t.Errorf("List = %+v; want cluster, role, then the bad node value with its error", es)
	}
	stop()
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
}
