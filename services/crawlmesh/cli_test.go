package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/crawlmesh/crawlmesh/pkg/clusterview"
	"github.com/crawlmesh/crawlmesh/pkg/crawlctl"
	"github.com/crawlmesh/crawlmesh/pkg/mesh"
	"github.com/crawlmesh/crawlmesh/pkg/natstest"
	"github.com/crawlmesh/crawlmesh/streams"
	"github.com/crawlmesh/crawlmesh/streams/streamstest"
)

// deadNATS returns n NATS URLs on loopback ports nothing listens on: a
// command given one fails fast with an error that names it, which shows
// which URL the command used.
func deadNATS(t *testing.T, n int) []string {
	t.Helper()
	var urls []string
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		urls = append(urls, "nats://"+ln.Addr().String())
		ln.Close()
	}
	return urls
}

// runCLI runs the CLI in process with env as its environment.
func runCLI(t *testing.T, env map[string]string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var o, e syncBuf
	c := &cli{getenv: func(k string) string { return env[k] }, stdout: &o, stderr: &e}
	code = run(t.Context(), args, c)
	return o.String(), e.String(), code
}

// Global flags go before, between and after the command words, with a
// space or an =, and each falls back to its CRAWLMESH_* variable; a flag
// given wins over the variable.
func TestGlobalFlagsAnywhere(t *testing.T) {
	u := deadNATS(t, 2)
	flagURL, envURL := u[0], u[1]
	env := map[string]string{"CRAWLMESH_NATS_URL": envURL}
	for _, tt := range []struct {
		name string
		env  map[string]string
		args []string
		want string // the URL the command tried
	}{
		{"before the command", nil, []string{"--nats", flagURL, "nodes"}, flagURL},
		{"before, with =", nil, []string{"--nats=" + flagURL, "nodes"}, flagURL},
		{"after the command", nil, []string{"nodes", "--nats=" + flagURL}, flagURL},
		{"after, with a space", nil, []string{"nodes", "--nats", flagURL}, flagURL},
		{"between the command words", nil, []string{"crawl", "--nats", flagURL, "status", "books-1"}, flagURL},
		{"after the arguments", nil, []string{"crawl", "status", "books-1", "--nats", flagURL}, flagURL},
		{"between the words, -o too", nil, []string{"crawl", "-o", "json", "--nats", flagURL, "ls"}, flagURL},
		{"before a group", nil, []string{"--timeout", "2s", "--nats", flagURL, "spider", "ls"}, flagURL},
		{"files", nil, []string{"files", "--nats", flagURL, "ls"}, flagURL},
		{"node command", nil, []string{"node", "pause", "--nats", flagURL, "w1"}, flagURL},
		{"env only", env, []string{"nodes"}, envURL},
		{"env only, group", env, []string{"crawl", "ls"}, envURL},
		{"flag wins over env (before)", env, []string{"--nats", flagURL, "nodes"}, flagURL},
		{"flag wins over env (after)", env, []string{"crawl", "status", "x", "--nats=" + flagURL}, flagURL},
		{"flag wins over env (between)", env, []string{"crawl", "--nats", flagURL, "ls"}, flagURL},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, errOut, code := runCLI(t, tt.env, tt.args...)
			if code != 1 || !strings.Contains(errOut, "cannot reach NATS at "+tt.want) {
				t.Fatalf("crawlmesh %s: exit %d, want 1 and an error naming %s:\n%s", strings.Join(tt.args, " "), code, tt.want, errOut)
			}
		})
	}
}

// Every flag keeps its CRAWLMESH_* variable, checked like the flag; a
// flag given wins and the variable is not even read.
func TestEnvFallbacks(t *testing.T) {
	url := deadNATS(t, 1)[0]
	for _, tt := range []struct {
		name string
		env  map[string]string
		args []string
		code int
		want string
	}{
		{"bad -o from env", map[string]string{"CRAWLMESH_OUTPUT": "yaml"}, []string{"nodes"}, 2, `-o "yaml"`},
		{"old -o variable", map[string]string{"CRAWLMESH_O": "yaml"}, []string{"nodes"}, 2, `-o "yaml"`},
		{"-o given wins over env", map[string]string{"CRAWLMESH_OUTPUT": "yaml"}, []string{"nodes", "-o", "json"}, 1, "cannot reach NATS"},
		{"--output given wins over env", map[string]string{"CRAWLMESH_OUTPUT": "yaml"}, []string{"--output=wide", "nodes"}, 1, "cannot reach NATS"},
		{"bad timeout from env", map[string]string{"CRAWLMESH_TIMEOUT": "soon"}, []string{"nodes"}, 2, "CRAWLMESH_TIMEOUT"},
		{"timeout given wins over env", map[string]string{"CRAWLMESH_TIMEOUT": "soon"}, []string{"nodes", "--timeout", "1s"}, 1, "cannot reach NATS"},
		{"zero timeout from env", map[string]string{"CRAWLMESH_TIMEOUT": "0s"}, []string{"crawl", "ls"}, 2, "--timeout 0s"},
		{"command flag from env", map[string]string{"CRAWLMESH_WORKERS": "999"}, []string{"up"}, 2, "--workers 999"},
		{"command flag given wins", map[string]string{"CRAWLMESH_WORKERS": "999"}, []string{"up", "--workers", "300"}, 2, "--workers 300"},
		{"bool flag from env", map[string]string{"CRAWLMESH_EXIT_WHEN_DONE": "true"}, []string{"up"}, 2, "--exit-when-done goes with --demo"},
		{"bad bool from env", map[string]string{"CRAWLMESH_DEMO": "perhaps"}, []string{"up"}, 2, "CRAWLMESH_DEMO"},
		{"healthcheck takes no env", map[string]string{"CRAWLMESH_TIMEOUT": "soon"}, []string{"healthcheck", "ftp://x"}, 2, "URL"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, errOut, code := runCLI(t, tt.env, append(tt.args, "--nats", url)...)
			if code != tt.code || !strings.Contains(errOut, tt.want) {
				t.Fatalf("crawlmesh %s with %v: exit %d, want %d and %q:\n%s", strings.Join(tt.args, " "), tt.env, code, tt.code, tt.want, errOut)
			}
		})
	}
}

// Usage errors exit 2 and say what is wrong; an unknown command comes
// with the closest ones (did you mean); help exits 0.
func TestUsageErrors(t *testing.T) {
	for _, tt := range []struct {
		args []string
		code int
		want []string
	}{
		{[]string{"nodess"}, 2, []string{`unknown command "nodess"`, "Did you mean this?", "nodes"}},
		{[]string{"--nats", "nats://127.0.0.1:1", "nodess"}, 2, []string{"Did you mean this?", "nodes"}},
		{[]string{"crawl", "statsu", "x"}, 2, []string{`unknown command "statsu" for "crawlmesh crawl"`, "status"}},
		{[]string{"node", "pase", "w1"}, 2, []string{`unknown command "pase"`, "Did you mean this?", "node pause"}},
		{[]string{"node", "set-conc", "w1", "3"}, 2, []string{`unknown command "set-conc"`, "node set-concurrency"}},
		{[]string{"spidr", "ls"}, 2, []string{"Did you mean this?", "spider"}},
		{[]string{"nosuchthing"}, 2, []string{`unknown command "nosuchthing"`}},
		{[]string{"up", "--nats", "nats://127.0.0.1:4333"}, 2, []string{"--nats nats://127.0.0.1:4333: up runs its own NATS server", "--nats-port"}},
		{[]string{}, 2, []string{"want a command"}},
		{[]string{"crawl"}, 2, []string{"want a command", "start", "status"}},
		{[]string{"crawl", "status"}, 2, []string{"crawl status ID"}},
		{[]string{"crawl", "start", "a", "b"}, 2, []string{"crawl start SPIDER"}},
		{[]string{"crawl", "ls", "extra"}, 2, []string{`unexpected argument "extra"`}},
		{[]string{"nodes", "--bogus"}, 2, []string{"unknown flag: --bogus"}},
		{[]string{"--bogus", "nodes"}, 2, []string{"unknown flag: --bogus"}},
		{[]string{"nodes", "--nast", "nats://x"}, 2, []string{"unknown flag: --nast", "Did you mean this?", "--nats"}},
		{[]string{"crawl", "start", "books", "--wiat"}, 2, []string{"Did you mean this?", "--wait"}},
		{[]string{"nodes", "-o", "yaml"}, 2, []string{`-o "yaml"`, "table, wide or json"}},
		{[]string{"nodes", "--timeout", "soon"}, 2, []string{"--timeout"}},
		{[]string{"node", "pause"}, 2, []string{"node pause"}},
		{[]string{"spider", "apply"}, 2, []string{"spider apply -f FILE"}},
		{[]string{"version", "x"}, 2, []string{`unexpected argument "x"`}},
		{[]string{"results", "export", "x", "--format", "xml"}, 2, []string{"--format"}},
		{[]string{"crawl", "requeue", "x"}, 2, []string{"--seq N", "--all"}},
		{[]string{"crawl", "requeue", "x", "--seq", "3", "--all"}, 2, []string{"not both"}},
		{[]string{"throttle", "set", "h.example", "--delay", "-2s"}, 2, []string{"--delay -2s: want zero or more"}},
		{[]string{"throttle", "set", "h.example", "--parallelism", "0"}, 2, []string{"--parallelism 0: want 1-1000"}},
		{[]string{"throttle", "set", "h.example", "--delay", "-2s", "--parallelism", "2"}, 2, []string{"--delay -2s"}},
		{[]string{"crawl", "requeue", "x", "--seq", "three"}, 2, []string{"--seq"}},
		{[]string{"crawl", "requeue"}, 2, []string{"crawl requeue ID --seq N|--all"}},
		{[]string{"bench", "--nats-memlimit", "100MB"}, 2, []string{`--nats-memlimit "100MB"`, "GOMEMLIMIT", "100MiB"}},
		{[]string{"help"}, 0, nil},
		{[]string{"--help"}, 0, nil},
		{[]string{"crawl", "start", "-h"}, 0, nil},
		{[]string{"version"}, 0, nil},
	} {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			out, errOut, code := runCLI(t, nil, tt.args...)
			if code != tt.code {
				t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tt.code, out, errOut)
			}
			for _, w := range tt.want {
				if !strings.Contains(errOut, w) {
					t.Errorf("stderr lacks %q:\n%s", w, errOut)
				}
			}
			if tt.code == 2 && !strings.Contains(errOut, "--help") {
				t.Errorf("a usage error should point at --help:\n%s", errOut)
			}
		})
	}
}

// A mistyped subcommand with one of its flags: cobra parses the flag as
// the group's, and the error is still the unknown command with the
// closest ones (did you mean), not the flag the group lacks.
func TestUsageErrorsMistypedWithFlag(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want []string
	}{
		{[]string{"spider", "aply", "-f", "shop.yaml"}, []string{`unknown command "aply" for "crawlmesh spider"`, "Did you mean this?", "apply"}},
		{[]string{"crawl", "strat", "books", "--wait"}, []string{`unknown command "strat" for "crawlmesh crawl"`, "Did you mean this?", "start"}},
		{[]string{"--nats", "nats://127.0.0.1:1", "crawl", "strat", "--wait", "books"}, []string{`unknown command "strat"`, "start"}},
		{[]string{"results", "exprot", "x", "--format", "csv"}, []string{`unknown command "exprot"`, "export"}},
		{[]string{"nodess", "--bogus"}, []string{`unknown command "nodess"`, "nodes"}},
		// No argument before the flag: the flag is what is wrong.
		{[]string{"crawl", "--wait", "strat"}, []string{"unknown flag: --wait"}},
		{[]string{"spider", "apply", "--fiel", "x"}, []string{"unknown flag: --fiel", "--file"}},
	} {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			out, errOut, code := runCLI(t, nil, tt.args...)
			if code != 2 {
				t.Fatalf("exit %d, want 2\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
			}
			for _, w := range tt.want {
				if !strings.Contains(errOut, w) {
					t.Errorf("stderr lacks %q:\n%s", w, errOut)
				}
			}
		})
	}
}

// Help says what the flags do: throttle set's --delay shows no default
// it would refuse (-1ns) and is optional; a master's --http names the
// console and API it serves; a worker has no --heartbeat-ttl (the
// master's sets the TTL) and its interval is checked against the bucket's
// TTL, not a flag of its own.
func TestHelpTexts(t *testing.T) {
	url := deadNATS(t, 1)[0]
	out, errOut, code := runCLI(t, nil, "throttle", "set", "--help")
	if code != 0 || !strings.Contains(out, "--delay duration") || strings.Contains(out, "-1ns") {
		t.Errorf("throttle set --help: exit %d, want 0 and --delay without -1ns:\n%s%s", code, out, errOut)
	}
	for _, args := range [][]string{{"--parallelism", "2"}, {"--delay", "0s"}} {
		_, errOut, code := runCLI(t, nil, append([]string{"throttle", "set", "h.example", "--nats", url}, args...)...)
		if code != 1 || !strings.Contains(errOut, "cannot reach NATS") {
			t.Errorf("throttle set %v: exit %d, want 1 (accepted, then no NATS):\n%s", args, code, errOut)
		}
	}

	_, errOut, code = runCLI(t, nil, "worker", "-h")
	if code != 0 || !strings.Contains(errOut, "-heartbeat-interval") || strings.Contains(errOut, "heartbeat-ttl") {
		t.Errorf("worker -h: exit %d, want 0 and no -heartbeat-ttl:\n%s", code, errOut)
	}
	_, errOut, code = runCLI(t, nil, "worker", "--nats", url, "--http", "", "--heartbeat-interval", "5s")
	if code != 1 || !strings.Contains(errOut, "cannot reach NATS") {
		t.Errorf("worker --heartbeat-interval 5s: exit %d, want 1 (checked against bucket nodes' TTL on joining):\n%s", code, errOut)
	}

	_, errOut, _ = runBin(t, "master", "-h") // exits 1, as flag.ErrHelp does
	if !strings.Contains(errOut, "listen address for the web console (/), the HTTP API (/api/v1/), /metrics and /healthz") {
		t.Errorf("master -h: want -http naming the console and API:\n%s", errOut)
	}
}

// Shell completion: a script for each shell, and the completions it asks
// the binary for name the commands, their subcommands and flags.
func TestCompletion(t *testing.T) {
	for _, sh := range []string{"bash", "zsh", "fish"} {
		out, errOut, code := runCLI(t, nil, "completion", sh)
		if code != 0 || len(out) < 500 || !strings.Contains(out, "crawlmesh") || !strings.Contains(out, "__complete") {
			t.Errorf("completion %s: exit %d, %d bytes:\n%.300s\n%s", sh, code, len(out), out, errOut)
		}
	}
	if _, _, code := runCLI(t, nil, "completion", "tcsh"); code != 2 {
		t.Errorf("completion tcsh: exit %d, want 2", code)
	}
	for _, tt := range []struct {
		args []string
		want []string
	}{
		{[]string{""}, []string{"nodes", "crawl", "spider", "files", "up", "completion", "doctor"}},
		{[]string{"cr"}, []string{"crawl"}},
		{[]string{"crawl", ""}, []string{"start", "status", "wait", "cancel", "ls", "logs", "deadletters", "requeue"}},
		{[]string{"--nats", "nats://x:4222", "crawl", ""}, []string{"start", "status"}},
		{[]string{"node", ""}, []string{"pause", "resume", "drain", "shutdown", "set-concurrency"}},
		{[]string{"nodes", "--"}, []string{"--nats", "--creds", "--output", "--timeout", "--tls-ca"}},
		{[]string{"results", "export", "x", "--format", ""}, []string{"jsonl", "csv"}},
	} {
		out, errOut, code := runCLI(t, nil, append([]string{"__complete"}, tt.args...)...)
		if code != 0 {
			t.Errorf("__complete %q: exit %d\n%s", tt.args, code, errOut)
		}
		for _, w := range tt.want {
			if !strings.Contains(out, w) {
				t.Errorf("__complete %q lacks %q:\n%s", tt.args, w, out)
			}
		}
	}
}

// Spider names, crawl ids and file names complete from the mesh; with no
// mesh to ask, completion offers nothing, fast, and succeeds.
func TestCompletionWithoutMesh(t *testing.T) {
	url := deadNATS(t, 1)[0]
	for _, args := range [][]string{
		{"--nats", url, "crawl", "status", ""},
		{"crawl", "--nats", url, "start", ""},
		{"spider", "get", "b"},
		{"files", "rm", ""},
	} {
		t0 := time.Now()
		out, errOut, code := runCLI(t, map[string]string{"CRAWLMESH_NATS_URL": url}, append([]string{"__complete"}, args...)...)
		if code != 0 || !strings.HasPrefix(out, ":4") || time.Since(t0) > 3*time.Second {
			t.Errorf("__complete %q: exit %d after %v:\n%s%s", args, code, time.Since(t0), out, errOut)
		}
	}
}

// -o is the same on every listing: json is JSON, wide is accepted wherever
// table is.
func TestOutputFlagOnEveryListing(t *testing.T) {
	url := deadNATS(t, 1)[0]
	for _, args := range [][]string{
		{"nodes"}, {"crawl", "ls"}, {"crawl", "status", "x"}, {"crawl", "deadletters", "x"}, {"crawl", "logs", "x"},
		{"spider", "ls"}, {"files", "ls"}, {"throttle", "ls"}, {"sink", "ls"}, {"doctor"}, {"node", "ping", "all"},
	} {
		for _, o := range []string{"table", "wide", "json"} {
			_, errOut, code := runCLI(t, nil, append(args, "-o", o, "--nats", url, "--timeout", "1s")...)
			// The mesh is unreachable: the command got past its flags.
			if code != 1 || strings.Contains(errOut, "--help") {
				t.Errorf("%v -o %s: exit %d:\n%s", args, o, code, errOut)
			}
		}
	}
}

// Not on a terminal (tests, CI, containers), up's nodes log to stderr as
// always; no log file is made.
func TestUpLogsOffTerminal(t *testing.T) {
	var o, e syncBuf
	c := &cli{getenv: func(string) string { return "" }, stdout: &o, stderr: &e}
	w, path, closeLog, err := upLogs(c, upConfig{data: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer closeLog()
	if w != c.stderr || path != "" {
		t.Fatalf("off a terminal: writer %T, file %q; want stderr and no file", w, path)
	}
}

// The bar counts pages handled of pages known; a finished crawl is full.
func TestCrawlProgress(t *testing.T) {
	st := crawlctl.Status{State: mesh.CrawlRunning, PagesOK: 10, PagesFailed: 1, Dead: 1, Dropped: 2, Queued: 6}
	if d, n := crawlProgress(st); d != 14 || n != 20 {
		t.Errorf("running: %d of %d, want 14 of 20", d, n)
	}
	st.State = mesh.CrawlCancelled
	if d, n := crawlProgress(st); d != 14 || n != 14 {
		t.Errorf("cancelled: %d of %d, want 14 of 14", d, n)
	}
}

// A node command's N such as -1 is read as the value and refused for its
// range (exit 2), not taken for an unknown flag; flags still go anywhere
// around it, and a good N goes on to NATS.
func TestNodeNegativeN(t *testing.T) {
	url := deadNATS(t, 1)[0]
	for _, tt := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"node", "scale", "a1", "-1"}, 2, "scale -1: want 0..256 workers"},
		{[]string{"node", "scale", "a1", "-1", "-o", "json"}, 2, "scale -1: want 0..256 workers"},
		{[]string{"node", "--nats", url, "scale", "a1", "-1"}, 2, "scale -1: want 0..256 workers"},
		{[]string{"node", "set-concurrency", "w1", "-1"}, 2, "set-concurrency -1: want 1..10000"},
		{[]string{"node", "set-concurrency", "all", "-1", "--nats=" + url}, 2, "set-concurrency -1: want 1..10000"},
		{[]string{"node", "set-concurrency", "w1", "0"}, 2, "set-concurrency 0: want 1..10000"},
		{[]string{"node", "set-concurrency", "w1", "20000"}, 2, "set-concurrency 20000: want 1..10000"},
		{[]string{"node", "scale", "a1", "-x"}, 2, `scale "-x": want a whole number of workers`},
		{[]string{"node", "scale", "all", "2"}, 2, "one agent's id, not all"},
		{[]string{"node", "pause", "w1", "--bogus"}, 2, "unknown flag: --bogus"},
		{[]string{"node", "pause", "w1", "-o", "yaml"}, 2, `-o "yaml"`},
		{[]string{"node", "pause"}, 2, "got 1 argument(s)"},
		{[]string{"node", "pause", "w1", "w2"}, 2, `unexpected argument "w2"`},
		// Good values go on: NATS is then what fails.
		{[]string{"node", "scale", "a1", "2", "--nats", url}, 1, "cannot reach NATS at " + url},
		{[]string{"node", "-o", "json", "set-concurrency", "w1", "8", "--nats", url}, 1, "cannot reach NATS at " + url},
	} {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			args := tt.args
			if !strings.Contains(strings.Join(args, " "), "--nats") {
				args = append(args, "--nats", url)
			}
			_, errOut, code := runCLI(t, nil, args...)
			if code != tt.code || !strings.Contains(errOut, tt.want) {
				t.Fatalf("crawlmesh %s: exit %d, want %d and %q:\n%s", strings.Join(args, " "), code, tt.code, tt.want, errOut)
			}
		})
	}
}

// up ignores a --nats that comes from CRAWLMESH_NATS_URL (meant for the other
// commands) but refuses one given on its command line.
func TestUpNatsFromEnv(t *testing.T) {
	_, errOut, code := runCLI(t, map[string]string{"CRAWLMESH_NATS_URL": "nats://127.0.0.1:4333"}, "up", "--workers", "-1")
	if code != 2 || strings.Contains(errOut, "up runs its own NATS server") || !strings.Contains(errOut, "--workers") {
		t.Errorf("exit %d, %q: want only the --workers usage error", code, errOut)
	}
}

// Interrupted (Ctrl-C, SIGTERM), a command says so and exits 130, not
// "read counter admitted of ...: context canceled" and 1 (found by
// review).
func TestInterrupted(t *testing.T) {
	url := natstest.RunServer(t).ClientURL()
	ctx, cancel := context.WithCancel(t.Context())
	var o, e syncBuf
	c := &cli{getenv: func(string) string { return "" }, stdout: &o, stderr: &e}
	done := make(chan int)
	go func() { done <- run(ctx, []string{"doctor", "--nats", url}, c) }()
	cancel()
	code := <-done
	if code != 130 || !strings.Contains(e.String(), "crawlmesh doctor: interrupted") || strings.Contains(e.String(), "context canceled") {
		t.Errorf("exit %d, stderr %q: want 130 and 'interrupted'", code, e.String())
	}
}

// The terminal bar starts at the crawl's known size ("0/1" for one seed),
// not at "0/-" (found by review); a size still unknown shows a spinner.
func TestCrawlBarStartsSized(t *testing.T) {
	var b bytes.Buffer
	newCrawlBar(&b, "c1", 1)
	if out := b.String(); !strings.Contains(out, "0/1") || strings.Contains(out, "0/-") {
		t.Errorf("bar of a crawl with one seed queued renders %q, want 0/1", out)
	}
}

// nodes shows no task count for an offline node: its last heartbeat's
// count is not what it runs (found by review: a cleanly drained worker
// showed "offline 3 6").
func TestNodesOfflineActive(t *testing.T) {
	var b bytes.Buffer
	printNodes(&b, nodesOutput{Nodes: []clusterview.Node{
		{ID: "w1", Role: "worker", Online: true, State: "running", ActiveTasks: 3, Capacity: 8},
		{ID: "w2", Role: "worker", Online: false, State: "running", ActiveTasks: 3, Capacity: 6},
	}}, false)
	lines := strings.Split(b.String(), "\n")
	if f := strings.Fields(lines[1]); len(f) < 6 || f[0] != "w1" || f[4] != "3" {
		t.Errorf("online node's line %q: want its 3 active tasks", lines[1])
	}
	if f := strings.Fields(lines[2]); len(f) < 6 || f[0] != "w2" || f[3] != "offline" || f[4] != "-" {
		t.Errorf("offline node's line %q: want offline and - for its tasks", lines[2])
	}
}

// doctor on a mesh where only bucket election exists (a master starting:
// it creates that bucket first, for its setup lease) says a master is
// setting the mesh up, not that 16 assets were deleted by hand (seen in a
// cluster's cold start).
func TestDoctorElectionBucketOnly(t *testing.T) {
	s := natstest.RunServerWith(t, &server.Options{JetStream: true, StoreDir: t.TempDir(), Port: -1})
	_, js := natstest.Connect(t, s)
	defs, err := streams.Load()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range defs.KV {
		if c.Bucket == mesh.ElectionBucket {
			if _, err := js.CreateKeyValue(t.Context(), c); err != nil {
				t.Fatal(err)
			}
		}
	}
	out, errOut, _ := runCLI(t, nil, "doctor", "--nats", s.ClientURL())
	if !strings.Contains(out, "a master is setting up the mesh's streams and buckets (only bucket election") || strings.Contains(out, "deleted?") {
		t.Errorf("doctor with bucket election alone:\n%s%s", out, errOut)
	}
}

// spider ls shows a spider's first start URL and how many more (a spec
// may hold thousands), -o wide every one, and names on stderr a stored
// spider that cannot be read rather than leaving it out unsaid.
func TestSpiderListStartURLs(t *testing.T) {
	nc, js := streamstest.Start(t, streams.Options{})
	url := nc.ConnectedUrl()
	kv := streamstest.Bucket(t, js, mesh.SpidersBucket)
	dir := t.TempDir()
	file := filepath.Join(dir, "many.yaml")
	if err := os.WriteFile(file, []byte("name: many\nstart_urls: [http://a.example/, http://a.example/2, http://a.example/3]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, errOut, code := runCLI(t, nil, "spider", "apply", "-f", file, "--nats", url); code != 0 {
		t.Fatalf("apply: %s", errOut)
	}
	if _, err := kv.Put(t.Context(), "broken", []byte("{not json")); err != nil {
		t.Fatal(err)
	}
	out, errOut, code := runCLI(t, nil, "spider", "ls", "--nats", url)
	if code != 0 || !strings.Contains(out, "http://a.example/ (+2 more)") || strings.Contains(out, "a.example/3") {
		t.Errorf("spider ls: exit %d\n%s", code, out)
	}
	if !strings.Contains(errOut, "spider broken cannot be read") {
		t.Errorf("spider ls stderr %q, want the unreadable spider named", errOut)
	}
	if out, _, _ := runCLI(t, nil, "spider", "ls", "-o", "wide", "--nats", url); !strings.Contains(out, "http://a.example/ http://a.example/2 http://a.example/3") {
		t.Errorf("spider ls -o wide:\n%s", out)
	}
}

// doctor warns when online masters evaluate schedules in different time
// zones, naming each; one zone, or an offline master's, is fine.
func TestDoctorScheduleZones(t *testing.T) {
	master := func(id, tz string, online bool) clusterview.Node {
		return clusterview.Node{ID: id, Role: mesh.RoleMaster, Online: online, Heartbeat: mesh.Heartbeat{ScheduleTZ: tz}}
	}
	for _, c := range []struct {
		nodes []clusterview.Node
		want  string
	}{
		{[]clusterview.Node{master("m1", "UTC", true), master("m2", "UTC", true)}, ""},
		{[]clusterview.Node{master("m1", "UTC", true), master("m2", "Asia/Tokyo", false)}, ""},
		{[]clusterview.Node{master("m1", "UTC", true), master("m2", "Asia/Tokyo", true), master("m3", "UTC", true)},
			"different time zones (Asia/Tokyo: m2; UTC: m1, m3)"},
	} {
		var got []string
		doctorScheduleZones(nodesOutput{Nodes: c.nodes}, func(level, check, format string, a ...any) {
			got = append(got, level+" "+fmt.Sprintf(format, a...))
		})
		switch {
		case c.want == "" && len(got) > 0:
			t.Errorf("%+v: %q, want nothing", c.nodes, got)
		case c.want != "" && (len(got) != 1 || !strings.HasPrefix(got[0], "warn ") || !strings.Contains(got[0], c.want)):
			t.Errorf("%+v: %q, want a warning with %q", c.nodes, got, c.want)
		}
	}
}

// doctor fails on tasks a work queue holds that its consumer will not
// deliver (below its ack floor), as a server whose disk filled up left
// them. A stream that keeps acked messages stands in for that state.
func TestDoctorStrandedTasks(t *testing.T) {
	s := natstest.RunServerWith(t, &server.Options{JetStream: true, StoreDir: t.TempDir(), Port: -1})
	_, js := natstest.Connect(t, s)
	st, err := js.CreateStream(t.Context(), jetstream.StreamConfig{Name: mesh.TasksStream, Subjects: []string{"crawlmesh.task.>"}})
	if err != nil {
		t.Fatal(err)
	}
	cons, err := st.CreateConsumer(t.Context(), jetstream.ConsumerConfig{Durable: mesh.TasksConsumer, AckPolicy: jetstream.AckExplicitPolicy})
	if err != nil {
		t.Fatal(err)
	}
	report := func() []string {
		var got []string
		doctorStranded(t.Context(), js, 1, func(level, check, format string, a ...any) {
			got = append(got, level+" "+fmt.Sprintf(format, a...))
		})
		return got
	}
	for range 5 {
		if _, err := js.Publish(t.Context(), "crawlmesh.task.c1", []byte("t")); err != nil {
			t.Fatal(err)
		}
	}
	if got := report(); len(got) != 0 {
		t.Fatalf("5 pending tasks: %q, want nothing", got)
	}
	batch, err := cons.Fetch(3, jetstream.FetchMaxWait(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	for m := range batch.Messages() {
		if err := m.DoubleAck(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	got := report()
	if len(got) != 1 || !strings.HasPrefix(got[0], "fail stream TASKS holds 3 task(s) its consumer workers will not deliver") {
		t.Errorf("3 tasks below the ack floor: %q, want a failure counting them", got)
	}
}

// results export --out FILE without --format takes the format from FILE's
// extension (x.csv once got JSON lines); an extension it has no format for
// is refused, naming it; a --format given wins.
func TestExportFormatFromOut(t *testing.T) {
	nc, js := streamstest.Start(t, streams.Options{})
	url := nc.ConnectedUrl()
	b, _ := json.Marshal(mesh.Crawl{ID: "x-1", Spider: "x", State: mesh.CrawlCompleted})
	if _, err := streamstest.Bucket(t, js, mesh.CrawlsBucket).Put(t.Context(), "x-1", b); err != nil {
		t.Fatal(err)
	}
	b, _ = json.Marshal(mesh.Item{URL: "http://127.0.0.1:1/a", Spider: "x", Crawl: "x-1", Data: map[string]any{"title": "A"}})
	if _, err := js.Publish(t.Context(), mesh.ResultSubject("x-1"), b); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	const csvHead, jsonHead = "url,spider,crawl,depth,fetched_at,title\n", `{"`
	for _, tt := range []struct {
		out    string
		format []string
		want   string // the file's start
	}{
		{"a.csv", nil, csvHead},
		{"b.CSV", nil, csvHead},
		{"c.jsonl", nil, jsonHead},
		{"d.json", nil, jsonHead},
		{"e", nil, jsonHead}, // no extension: the default
		{"f.csv", []string{"--format", "jsonl"}, jsonHead},
		{"g.txt", []string{"--format", "csv"}, csvHead},
		{"books.2026.11.28", nil, jsonHead}, // another extension: the default
	} {
		file := filepath.Join(dir, tt.out)
		args := append([]string{"results", "export", "x-1", "--out", file, "--nats", url}, tt.format...)
		if _, errOut, code := runCLI(t, nil, args...); code != 0 {
			t.Errorf("%v: exit %d:\n%s", args, code, errOut)
			continue
		}
		if got, _ := os.ReadFile(file); !strings.HasPrefix(string(got), tt.want) {
			t.Errorf("--out %s %v: file starts %.60q, want %q", tt.out, tt.format, got, tt.want)
		}
	}
}

// A bad log level from CRAWLMESH_LOG_LEVEL is refused naming the
// variable, not --log-level, in a worker (boot's flags) and in up
// (cobra's); one given on the command line names the flag.
func TestLogLevelFromEnv(t *testing.T) {
	url := deadNATS(t, 1)[0]
	env := map[string]string{"CRAWLMESH_LOG_LEVEL": "verbose"}
	for _, tt := range []struct {
		env  map[string]string
		args []string
		code int
		want string
	}{
		{env, []string{"worker", "--nats", url, "--http", ""}, 1, `CRAWLMESH_LOG_LEVEL="verbose"`},
		{env, []string{"up", "--data", t.TempDir()}, 2, `CRAWLMESH_LOG_LEVEL="verbose"`},
		{env, []string{"agent", "--nats", url}, 2, `CRAWLMESH_LOG_LEVEL="verbose"`},
		{nil, []string{"worker", "--nats", url, "--log-level", "verbose"}, 1, `"verbose" for flag -log-level`},
		{nil, []string{"up", "--log-level", "verbose"}, 2, `"verbose" for "--log-level"`},
	} {
		_, errOut, code := runCLI(t, tt.env, tt.args...)
		if code != tt.code || !strings.Contains(errOut, tt.want) {
			t.Errorf("%v with %v: exit %d, want %d and %q:\n%s", tt.args, tt.env, code, tt.code, tt.want, errOut)
		}
	}
}
