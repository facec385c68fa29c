package main

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/crawlmesh/crawlmesh/pkg/mesh"
	"github.com/crawlmesh/crawlmesh/services/internal/harness"
)

// TestNodeAllLive: a command to all, as a user sends it, against a master
// and three worker processes. On a healthy mesh `node ping all` returns as
// soon as every online node answered, not at its --timeout. With w2 frozen
// (SIGSTOP: its heartbeat stays live in bucket nodes, the TTL here is 60s)
// the CLI lists the answers of the others, names w2 as not answering and
// exits 1; the HTTP API answers 200 with w2's entry marked "timeout"; and
// `node pause all` still stores its value for the worker role, so w2 is
// paused once it runs again.
func TestNodeAllLive(t *testing.T) {
	const token = "nodeall-token-0123456789"
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	m := harness.StartMesh(t, harness.MeshConfig{Workers: 3, HTTP: true,
		MasterArgs: []string{"--heartbeat-ttl", "60s", "--api-token-file", tokenFile}})
	all := []string{"m1", "w1", "w2", "w3"}
	w2 := m.Workers[1]
	// cli runs crawlmesh and fails the test if it runs past bound: the
	// test's own patience, far below the --timeout it may give.
	cli := func(bound time.Duration, args ...string) (string, string, int) {
		t.Helper()
		return harness.RunBinEnv(t, bound, m.CLI.Env, "crawlmesh", append(args, "--nats", m.Cluster.URL())...)
	}
	api := func(path string) (int, []mesh.Reply, string) {
		t.Helper()
		req, err := http.NewRequest("POST", "http://"+m.HTTP["m1"]+"/api/v1/"+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("POST %s: %v", path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		var rs []mesh.Reply
		_ = json.Unmarshal(b, &rs)
		return resp.StatusCode, rs, string(b)
	}
	nodesOf := func(rs []mesh.Reply, keep func(mesh.Reply) bool) []string {
		var ids []string
		for _, r := range rs {
			if keep(r) {
				ids = append(ids, r.Node)
			}
		}
		slices.Sort(ids)
		return ids
	}
	answered := func(r mesh.Reply) bool { return r.OK && !r.Timeout }

	// Healthy: every online node answers and the CLI returns then; with
	// --timeout 30s, waiting it out would overrun the 25s bound.
	t0 := time.Now()
	out, errOut, code := cli(25*time.Second, "node", "ping", "all", "--timeout", "30s", "-o", "json")
	t.Logf("node ping all --timeout 30s on a healthy mesh of 4 nodes returned in %v", time.Since(t0).Round(time.Millisecond))
	var rs []mesh.Reply
	if err := json.Unmarshal([]byte(out), &rs); code != 0 || err != nil || !slices.Equal(nodesOf(rs, answered), all) {
		t.Fatalf("node ping all on a healthy mesh: exit %d, want 0 and answers from %v:\n%s%s", code, all, out, errOut)
	}

	// w2 frozen: online, silent.
	w2.Freeze()
	thawed := false
	defer func() {
		if !thawed {
			w2.Thaw()
		}
	}()
	out, errOut, code = cli(time.Minute, "node", "ping", "all", "--timeout", "3s")
	if code != 1 || !strings.Contains(errOut, "1 of 4 online node(s) did not answer ping within --timeout 3s: w2") {
		t.Errorf("node ping all with w2 frozen: exit %d, stderr %q; want 1 naming w2", code, errOut)
	}
	for _, id := range []string{"m1", "w1", "w3"} {
		if !slices.ContainsFunc(strings.Split(out, "\n"), func(l string) bool {
			f := strings.Fields(l)
			return len(f) >= 3 && f[0] == id && f[2] == "ok"
		}) {
			t.Errorf("node ping all with w2 frozen: no ok line for %s:\n%s", id, out)
		}
	}
	if !strings.Contains(out, "no answer: did not answer ping in time") {
		t.Errorf("node ping all with w2 frozen: w2's line does not say it did not answer:\n%s", out)
	}

	code, rs, body := api("nodes/all/ping")
	if code != http.StatusOK || !slices.Equal(nodesOf(rs, answered), []string{"m1", "w1", "w3"}) ||
		!slices.Equal(nodesOf(rs, func(r mesh.Reply) bool {
			return r.Timeout && !r.OK && r.Role == mesh.RoleWorker && r.Error == "did not answer ping in time"
		}), []string{"w2"}) {
		t.Errorf("POST nodes/all/ping with w2 frozen: %d %s; want 200 with m1, w1, w3 ok and w2 marked timeout", code, body)
	}

	// pause all reaches the others, fails for w2, and is stored for the
	// worker role all the same: w2 pauses once it runs again.
	out, errOut, code = cli(time.Minute, "node", "pause", "all", "--timeout", "3s")
	if code != 1 || !strings.Contains(errOut, "did not answer pause") || !strings.Contains(errOut, ": w2") {
		t.Errorf("node pause all with w2 frozen: exit %d; want 1 naming w2\n%s%s", code, out, errOut)
	}
	w2.Thaw()
	thawed = true
	harness.Eventually(t, 15*time.Second, "every worker paused, w2 by the stored role value", func() bool {
		for _, id := range []string{"w1", "w2", "w3"} {
			if hb, err := m.Heartbeat(id); err != nil || hb.State != mesh.StatePaused {
				return false
			}
		}
		return true
	})
	// Everyone answers again. The master refuses resume (it runs no
	// tasks): no failure, the exit status is 0.
	out = m.CLI.Must("node", "resume", "all")
	if !strings.Contains(out, "n/a: a master runs no tasks") {
		t.Errorf("node resume all: the master's line does not say resume does not apply to it:\n%s", out)
	}
	m.CLI.Must("node", "ping", "all")
}
