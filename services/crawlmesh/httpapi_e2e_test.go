package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/crawlmesh/crawlmesh/pkg/clusterconfig"
	"github.com/crawlmesh/crawlmesh/pkg/crawlctl"
	"github.com/crawlmesh/crawlmesh/pkg/httpapi"
	"github.com/crawlmesh/crawlmesh/pkg/mesh"
	"github.com/crawlmesh/crawlmesh/pkg/synthsite"
)

// TestHTTPAPI drives a master's HTTP API the way an operator's script
// would: reads are open, a crawl is started, watched and a node paused with
// the token, and every state-changing request without it is refused.
func TestHTTPAPI(t *testing.T) {
	m := startMesh(t, 1)
	site := httptest.NewServer(synthsite.New(synthsite.Config{Pages: 40}))
	t.Cleanup(site.Close)
	m.apply(synthsite.Spec("api", site.URL, synthsite.Config{Pages: 40}))

	token := "s3cret-token-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := "127.0.0.1:" + strconv.Itoa(freePort(t))
	m2 := start(t, "master", "--nats", m.url, "--id", "m2", "--http", addr, "--api-token-file", tokenFile)
	base := "http://" + addr + "/api/v1/"
	call := func(method, path, tok, body string) (int, []byte) {
		t.Helper()
		req, err := http.NewRequest(method, base+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, []byte(err.Error())
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}

	// Reads need no token; the view has every node.
	waitFor(t, 15*time.Second, "GET nodes lists w1, m1 and m2", func() bool {
		code, b := call("GET", "nodes", "", "")
		return code == 200 && bytes.Contains(b, []byte(`"id":"w1"`)) && bytes.Contains(b, []byte(`"id":"m2"`))
	})

	// State changes without the token, or with a wrong one, are refused.
	for _, tc := range []struct{ method, path, tok, body string }{
		{"POST", "crawls", "", `{"spider":"api"}`},
		{"POST", "crawls", "wrong", `{"spider":"api"}`},
		{"POST", "crawls", token + "x", `{"spider":"api"}`},
		{"POST", "nodes/w1/pause", "", ""},
		{"POST", "crawls/x/cancel", "", ""},
	} {
		if code, b := call(tc.method, tc.path, tc.tok, tc.body); code != http.StatusUnauthorized {
			t.Errorf("%s %s with token %q: %d %s, want 401", tc.method, tc.path, tc.tok, code, b)
		}
	}
	if code, b := call("POST", "crawls", token, `{"spider":"nope"}`); code != http.StatusUnprocessableEntity || !bytes.Contains(b, []byte("nope")) {
		t.Errorf("start of an unknown spider: %d %s", code, b)
	}
	if code, b := call("POST", "crawls", token, `{"spidr":"api"}`); code != http.StatusBadRequest {
		t.Errorf("misspelt field: %d %s", code, b)
	}

	// Start, watch to completion, read the status.
	code, b := call("POST", "crawls", token, `{"spider":"api"}`)
	if code != http.StatusCreated {
		t.Fatalf("start: %d %s", code, b)
	}
	var started struct{ ID string }
	if err := json.Unmarshal(b, &started); err != nil || started.ID == "" {
		t.Fatalf("start reply %s: %v", b, err)
	}
	var st crawlctl.Status
	waitFor(t, 60*time.Second, "crawl completed (GET crawls/ID)", func() bool {
		code, b := call("GET", "crawls/"+started.ID, "", "")
		return code == 200 && json.Unmarshal(b, &st) == nil && st.State == mesh.CrawlCompleted
	})
	if st.PagesOK != 40 {
		t.Errorf("crawl over the API fetched %d pages, want 40: %+v", st.PagesOK, st)
	}
	// A finished crawl's seen-set is dropped: it is the state that grows
	// with every URL.
	nc := connect(t, m.url)
	js, _ := jetstream.New(nc)
	waitFor(t, 10*time.Second, "seen-set of the completed crawl purged", func() bool {
		s, err := js.Stream(t.Context(), "KV_"+mesh.SeenBucket)
		if err != nil {
			return false
		}
		info, err := s.Info(t.Context(), jetstream.WithSubjectFilter("$KV."+mesh.SeenBucket+"."+started.ID+".>"))
		return err == nil && len(info.State.Subjects) == 0
	})
	// Its counters keep one message each, the total.
	waitFor(t, 10*time.Second, "counters of the completed crawl trimmed to one message", func() bool {
		s, err := js.Stream(t.Context(), mesh.StatsStream)
		if err != nil {
			return false
		}
		info, err := s.Info(t.Context(), jetstream.WithSubjectFilter(mesh.StatSubject(started.ID, ">")))
		if err != nil || len(info.State.Subjects) == 0 {
			return false
		}
		for _, n := range info.State.Subjects {
			if n != 1 {
				return false
			}
		}
		return true
	})
	if code, b := call("GET", "crawls/"+started.ID, "", ""); code != 200 || json.Unmarshal(b, &st) != nil || st.PagesOK != 40 || st.Items != 40 {
		t.Errorf("status after the counters were trimmed: %d %s", code, b)
	}
	if code, b := call("GET", "crawls/no-such-crawl", "", ""); code != http.StatusNotFound {
		t.Errorf("unknown crawl: %d %s", code, b)
	}

	// Command a node.
	code, b = call("POST", "nodes/w1/pause", token, "")
	if code != 200 || !bytes.Contains(b, []byte(mesh.StatePaused)) {
		t.Fatalf("pause w1: %d %s", code, b)
	}
	// Every node at once: the broadcast waits until every online node
	// answered (at most its time), then the value is stored for the
	// worker role with a time of its own (it failed with 503 when storing
	// shared the broadcast's spent time).
	code, b = call("POST", "nodes/all/resume", token, "")
	var replies []mesh.Reply
	if code != 200 || json.Unmarshal(b, &replies) != nil ||
		!slices.ContainsFunc(replies, func(r mesh.Reply) bool { return r.Node == "w1" && r.OK && r.State == mesh.StateRunning }) {
		t.Fatalf("resume all: %d %s", code, b)
	}
	// w1's own "paused true" (from its pause above) is gone; the worker
	// role holds "false".
	var cfg httpapi.ConfigReply
	if code, b := call("GET", "config", "", ""); code != 200 || json.Unmarshal(b, &cfg) != nil {
		t.Fatalf("config after resume all: %d %s", code, b)
	}
	var paused []string
	for _, e := range cfg.Entries {
		if e.Key == clusterconfig.Paused {
			paused = append(paused, e.Scope.String()+"="+e.Value)
		}
	}
	if want := []string{"role worker=false"}; !slices.Equal(paused, want) {
		t.Errorf("paused stored after resume all: %q; want %q", paused, want)
	}
	if code, b := call("POST", "nodes/nobody/pause", token, ""); code != http.StatusNotFound {
		t.Errorf("pause of an unknown node: %d %s", code, b)
	}
	if code, b := call("POST", "nodes/w1/explode", token, ""); code != http.StatusBadRequest {
		t.Errorf("unknown command: %d %s", code, b)
	}
	if strings.Contains(m2.Output(), token) {
		t.Errorf("the token appears in the master's log:\n%s", m2.Output())
	}

	// A master started without a token serves reads and refuses changes.
	addr3 := "127.0.0.1:" + strconv.Itoa(freePort(t))
	start(t, "master", "--nats", m.url, "--id", "m3", "--http", addr3)
	base = "http://" + addr3 + "/api/v1/"
	waitFor(t, 15*time.Second, "m3 serves reads", func() bool {
		code, _ := call("GET", "nodes", "", "")
		return code == 200
	})
	if code, b := call("POST", "crawls", token, `{"spider":"api"}`); code != http.StatusForbidden || !bytes.Contains(b, []byte("--api-token-file")) {
		t.Errorf("master without a token: %d %s, want 403 naming --api-token-file", code, b)
	}
}

// TestAPITokenMinimumLength: a token shorter than 16 characters is refused
// at start-up whether it comes from --api-token-file or CRAWLMESH_API_TOKEN
// (a master and up alike), and the error names where it came from but
// never shows it. The check comes before NATS, so a dead URL does.
func TestAPITokenMinimumLength(t *testing.T) {
	const short = "s3cretXYZ" // 9 characters
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte(short+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	url := deadNATS(t, 1)[0]
	for _, tt := range []struct {
		name string
		env  []string
		args []string
		want string
	}{
		{"env", []string{"CRAWLMESH_API_TOKEN=" + short}, nil, "CRAWLMESH_API_TOKEN: the token has 9 characters; use at least 16"},
		{"file", nil, []string{"--api-token-file", tokenFile}, "the token has 9 characters; use at least 16"},
	} {
		t.Run("master "+tt.name, func(t *testing.T) {
			p := startEnv(t, tt.env, "master", append([]string{"--nats", url, "--http", ""}, tt.args...)...)
			code := exitCode(t, p, 10*time.Second)
			if out := p.Output(); code == 0 || !strings.Contains(out, tt.want) || strings.Contains(out, short) {
				t.Errorf("exit %d, want non-zero and %q without the token:\n%s", code, tt.want, out)
			}
		})
	}
	// up checks the token before it listens: on a port in use, without
	// the check, it stops there rather than run a mesh.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, errOut, code := runCLI(t, map[string]string{"CRAWLMESH_API_TOKEN": short}, "up", "--data", t.TempDir(), "--http", ln.Addr().String())
	if code != 2 || !strings.Contains(errOut, "CRAWLMESH_API_TOKEN: the token has 9 characters") || strings.Contains(errOut, short) {
		t.Errorf("up: exit %d, want 2 and the variable named without the token:\n%s", code, errOut)
	}
}
