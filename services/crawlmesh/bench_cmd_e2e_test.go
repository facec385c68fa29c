package main

import (
	"encoding/json"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/crawlmesh/crawlmesh/pkg/mesh"
)

// TestBenchProcesses runs `crawlmesh bench` as a user would and checks
// that its mesh row is a mesh of separate processes (a nats-server
// process whose resident set it measured) beside plain colly, with the
// in-process row labelled as such.
func TestBenchProcesses(t *testing.T) {
	out, errOut, code := runBin(t, "crawlmesh", "bench", "--pages", "300", "--workers", "1", "--parallelism", "8",
		"--in-process", "-o", "json")
	if code != 0 {
		t.Fatalf("bench exited %d:\n%s\n%s", code, out, errOut)
	}
	var rows []benchResult
	if err := json.Unmarshal([]byte(out), &rows); err != nil {
		t.Fatalf("bench -o json: %v\n%s", err, out)
	}
	names := map[string]benchResult{}
	for _, r := range rows {
		names[r.Name] = r
	}
	colly, ok1 := names["colly"]
	mesh, ok2 := names["mesh 1 worker(s)"]
	inproc, ok3 := names["in-process mesh 1 worker(s)"]
	if !ok1 || !ok2 || !ok3 {
		t.Fatalf("want rows colly, mesh 1 worker(s), in-process mesh 1 worker(s); got %s", out)
	}
	if colly.Pages < 300 || mesh.Pages != 300 || mesh.Items != 300 || inproc.Pages != 300 {
		t.Errorf("pages: colly %d, mesh %d (items %d), in-process %d; want 300 each", colly.Pages, mesh.Pages, mesh.Items, inproc.Pages)
	}
	if mesh.ServerRSS <= 0 || mesh.PeakRSS <= mesh.ServerRSS || mesh.ServerCPUPerPage <= 0 {
		t.Errorf("mesh row measures no separate nats-server process: %+v", mesh)
	}
	if strings.Contains(errOut, "panic") {
		t.Errorf("stderr: %s", errOut)
	}
}

// TestBenchPartitionPlacement: on a 3-server cluster at R1, `bench` tags
// each server and gives the master --partition-tags, so each partition's
// work queue, counter stream and seen bucket share one server and the
// three partitions are on three servers.
func TestBenchPartitionPlacement(t *testing.T) {
	out, errOut, code := runBin(t, "crawlmesh", "bench", "--pages", "600", "--workers", "1", "--parallelism", "8",
		"--no-colly", "--servers", "3", "--replicas", "1", "--partitions", "3", "-o", "json")
	if code != 0 {
		t.Fatalf("bench exited %d:\n%s\n%s", code, out, errOut)
	}
	var rows []benchResult
	if err := json.Unmarshal([]byte(out), &rows); err != nil || len(rows) != 2 {
		t.Fatalf("bench -o json: %v\n%s", err, out)
	}
	server := map[string]string{}
	for _, s := range rows[1].Streams {
		server[s.Name] = s.Server
	}
	used := map[string]bool{}
	for p := range 3 {
		names := []string{mesh.TasksStreamOf(p), mesh.StatsStreamOf(p), "KV_" + mesh.SeenBucketOf(p)}
		srv := server[names[0]]
		for _, n := range names {
			if server[n] == "" || server[n] != srv {
				t.Errorf("partition %d: %s on %q, %s on %q: want one server", p, names[0], srv, n, server[n])
			}
		}
		if used[srv] {
			t.Errorf("partition %d shares server %s with another partition", p, srv)
		}
		used[srv] = true
	}
	if rows[1].Pages != 600 || rows[1].Items != 600 {
		t.Errorf("crawl: %d pages, %d items; want 600 each", rows[1].Pages, rows[1].Items)
	}
}

// TestBenchKilledStopsItsNodes: a bench killed mid-run (SIGKILL, as a test
// timeout does) leaves none of its nats-server, master and worker
// processes running: they held its output pipes, and a killed bench had
// hung the test that ran it until the package's timeout (seen in CI).
func TestBenchKilledStopsItsNodes(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("needs /proc to find the bench's processes")
	}
	b := start(t, "crawlmesh", "bench", "--pages", "300000", "--workers", "1", "--no-colly")
	var nodes []int
	waitFor(t, 60*time.Second, "the bench's server, master and worker running", func() bool {
		nodes = childrenOf(b.PID())
		return len(nodes) >= 3
	})
	t.Cleanup(func() { // should the test fail, they must not outlive it
		for _, pid := range nodes {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	})
	b.Signal(syscall.SIGKILL)
	waitFor(t, 30*time.Second, "the killed bench's nodes gone", func() bool {
		for _, pid := range nodes {
			if syscall.Kill(pid, 0) == nil && !zombie(pid) {
				return false
			}
		}
		return true
	})
}

// childrenOf lists the processes whose parent is pid (from /proc).
func childrenOf(pid int) []int {
	var out []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		child, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if b, err := os.ReadFile("/proc/" + e.Name() + "/stat"); err == nil {
			// pid (comm) state ppid ...: comm may hold spaces, so read after ")".
			f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
			if len(f) > 1 && f[1] == strconv.Itoa(pid) {
				out = append(out, child)
			}
		}
	}
	return out
}

// zombie: pid has exited and waits for its parent to reap it.
func zombie(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	return len(f) > 0 && f[0] == "Z"
}
