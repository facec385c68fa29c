package progspider

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/crawlmesh/crawlmesh/pkg/files"
	"github.com/crawlmesh/crawlmesh/pkg/natstest"
	"github.com/crawlmesh/crawlmesh/pkg/spec"
	"github.com/crawlmesh/crawlmesh/pkg/spiderproto"
)

type crawlLeveler interface{ CrawlLevel() bool }

func isCrawlLevel(err error) bool {
	var cl crawlLeveler
	return errors.As(err, &cl) && cl.CrawlLevel()
}

const page = `<html><body><h1>Tea</h1><a href="/p/2">next</a></body></html>`

func parse(t *testing.T, r *Runner, s *spec.Spec) (spiderproto.Answer, error) {
	t.Helper()
	return r.Parse(t.Context(), s, spiderproto.Page{URL: "http://127.0.0.1/p/1", Status: 200, Body: page, Crawl: "c1", Spider: s.Name})
}

func TestInlineScript(t *testing.T) {
	r := New(Config{})
	defer r.Close()
	s := &spec.Spec{Name: "js", Script: `function parse(p) { return {items: [{title: p.css("h1")[0].text(), n: 7}], links: ["/p/2"]} }`}
	ans, err := parse(t, r, s)
	if err != nil {
		t.Fatal(err)
	}
	if ans.Items[0]["title"] != "Tea" || ans.Items[0]["n"] != "7" || ans.Links[0] != "/p/2" {
		t.Errorf("answer %+v", ans)
	}
	if len(r.scripts) != 1 {
		t.Errorf("%d compiled versions after one script, want 1", len(r.scripts))
	}
	if _, err := parse(t, r, s); err != nil || len(r.scripts) != 1 {
		t.Errorf("second page: %v, %d versions: a script is compiled once per version", err, len(r.scripts))
	}
}

func TestCrawlLevelErrors(t *testing.T) {
	r := New(Config{})
	defer r.Close()
	_, err := parse(t, r, &spec.Spec{Name: "bad", Script: "function parse(p) { return {"})
	if !isCrawlLevel(err) || !strings.Contains(err.Error(), "line 1") {
		t.Errorf("a script that does not compile: %v; want a crawl-level error with its line", err)
	}
	_, err = parse(t, r, &spec.Spec{Name: "nobin", Command: []string{"/nonexistent/spider-binary"}})
	if !isCrawlLevel(err) || !strings.Contains(err.Error(), "cannot start") {
		t.Errorf("a command that cannot start: %v; want a crawl-level error", err)
	}
	_, err = parse(t, r, &spec.Spec{Name: "nofiles", ScriptFile: "x.js"})
	if !isCrawlLevel(err) {
		t.Errorf("script_file without a file store: %v; want a crawl-level error", err)
	}
	// A file the store does not have: every page would fail alike.
	cache, _, _ := fileStore(t)
	withFiles := New(Config{Files: cache, WorkDir: t.TempDir()})
	defer withFiles.Close()
	for _, sp := range []*spec.Spec{{Name: "nosuch", ScriptFile: "nope.js"},
		{Name: "nosuchdata", Command: []string{"python3", "x.py"}, Files: []string{"x.py"}}} {
		_, err = parse(t, withFiles, sp)
		if !isCrawlLevel(err) || !strings.Contains(err.Error(), "no such file") || strings.Count(err.Error(), "(crawlmesh") > 1 ||
			!strings.Contains(err.Error(), "crawlmesh files put") {
			t.Errorf("spider %s with a file the store lacks: %v; want a crawl-level error naming it, with one hint of each", sp.Name, err)
		}
	}
	// A script that throws fails its page only.
	_, err = parse(t, r, &spec.Spec{Name: "throws", Script: `function parse(p) { throw new Error("boom") }`})
	if err == nil || isCrawlLevel(err) || !strings.Contains(err.Error(), "boom") {
		t.Errorf("a script that throws: %v; want a page error naming the message", err)
	}
}

// TestScriptFileVersions: a new version of a script file is compiled and
// used by the next page; an unchanged one is neither fetched nor compiled
// again.
func TestScriptFileVersions(t *testing.T) {
	cache, _, putFile := fileStore(t)
	put := func(v string) {
		putFile("s.js", `function parse(p) { return {items: [{v: "`+v+`"}]} }`)
	}
	r := New(Config{Files: cache})
	defer r.Close()
	sp := &spec.Spec{Name: "f", ScriptFile: "s.js"}
	put("1")
	for range 3 {
		ans, err := parse(t, r, sp)
		if err != nil || ans.Items[0]["v"] != "1" {
			t.Fatalf("v1: %+v, %v", ans, err)
		}
	}
	if n := cache.Downloads(); n != 1 {
		t.Errorf("%d downloads for one version, want 1", n)
	}
	put("2")
	ans, err := parse(t, r, sp)
	if err != nil || ans.Items[0]["v"] != "2" {
		t.Fatalf("after the put of v2: %+v, %v", ans, err)
	}
	if len(r.scripts) != 2 {
		t.Errorf("%d compiled versions, want 2", len(r.scripts))
	}
}

// TestCommandFilesOutliveEviction: a command spider whose page is still
// running on version 1 of its data file while versions 2 to 5 are put and
// used by other crawls: the worker's cache stays bounded (the old
// versions are deleted), each crawl gets the current version, and the
// running command still reads version 1 from its working directory.
func TestCommandFilesOutliveEviction(t *testing.T) {
	cache, cacheDir, put := fileStore(t)
	ctx := t.Context()
	// On version 1 the page says it started, then waits (at most 20 s)
	// for the test's signal before it reads data.txt.
	sig := t.TempDir()
	put("spider.sh", "#!/bin/sh\nwhile read line; do\n"+
		"  if [ \"$(cat data.txt)\" = v1 ]; then\n"+
		"    touch '"+sig+"/started'; i=0\n"+
		"    while [ ! -e '"+sig+"/go' ] && [ $i -lt 400 ]; do sleep 0.05; i=$((i+1)); done\n"+
		"  fi\n"+
		"  printf '{\"items\":[{\"v\":\"%s\"}],\"links\":[]}\\n' \"$(cat data.txt)\"\n"+
		"done\n")
	put("data.txt", "v1")
	r := New(Config{Files: cache, WorkDir: t.TempDir()})
	defer r.Close()
	sp := &spec.Spec{Name: "cmd", Command: []string{"./spider.sh"}, Files: []string{"spider.sh", "data.txt"}}
	parseIn := func(crawl string) (spiderproto.Answer, error) {
		return r.Parse(ctx, sp, spiderproto.Page{URL: "http://127.0.0.1/p/1", Status: 200, Body: page, Crawl: crawl, Spider: sp.Name})
	}
	type result struct {
		ans spiderproto.Answer
		err error
	}
	first := make(chan result, 1)
	go func() {
		ans, err := parseIn("c1")
		first <- result{ans, err}
	}()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, err := os.Stat(filepath.Join(sig, "started")); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the command's first page did not start within 20 s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	for i := 2; i <= 5; i++ {
		v := "v" + strconv.Itoa(i)
		put("data.txt", v)
		ans, err := parseIn("c" + strconv.Itoa(i))
		if err != nil || len(ans.Items) != 1 || ans.Items[0]["v"] != v {
			t.Fatalf("crawl c%d after the put of %s: %+v, %v", i, v, ans, err)
		}
	}
	// spider.sh and data.txt v5 current, one recent other (v4).
	des, _ := os.ReadDir(cacheDir)
	if len(des) != 3 || cache.Evictions() != 3 {
		var names []string
		for _, de := range des {
			names = append(names, de.Name())
		}
		t.Errorf("cache after 5 versions: %v, %d evictions; want 3 files, 3 evictions", names, cache.Evictions())
	}
	if err := os.WriteFile(filepath.Join(sig, "go"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	res := <-first
	if res.err != nil || len(res.ans.Items) != 1 || res.ans.Items[0]["v"] != "v1" {
		t.Errorf("the page running on v1 answered %+v, %v; want v1", res.ans, res.err)
	}
}

// fileStore starts a server with the Object Store bucket and returns a
// worker's cache of it (every lookup asks the store; one older version
// kept), the cache's directory and a put of a file's new version.
func fileStore(t *testing.T) (*files.Cache, string, func(name, body string)) {
	t.Helper()
	s := natstest.RunServer(t)
	_, js := natstest.Connect(t, s)
	obs, err := js.CreateObjectStore(t.Context(), jetstream.ObjectStoreConfig{Bucket: files.Bucket})
	if err != nil {
		t.Fatal(err)
	}
	store := files.New(obs)
	cacheDir := t.TempDir()
	cache, err := files.NewCache(store, cacheDir, files.WithLookupTTL(0), files.WithRetention(1, 1<<20))
	if err != nil {
		t.Fatal(err)
	}
	put := func(name, body string) {
		t.Helper()
		if _, err := store.Put(t.Context(), name, strings.NewReader(body)); err != nil {
			t.Fatal(err)
		}
	}
	return cache, cacheDir, put
}

// TestCommandWorkDirsRemoved: a command's working directory, with what the
// command wrote there, goes when its processes stop: when a newer version
// of the spider's files replaces it, when its crawl ends, and when the
// worker stops. Other crawls' directories stay.
func TestCommandWorkDirsRemoved(t *testing.T) {
	cache, _, put := fileStore(t)
	// Each page leaves a scratch file in the working directory.
	put("spider.sh", "#!/bin/sh\nwhile read line; do\n"+
		"  echo x >> scratch.txt\n"+
		"  printf '{\"items\":[{\"v\":\"%s\"}],\"links\":[]}\\n' \"$(cat data.txt)\"\n"+
		"done\n")
	put("data.txt", "v1")
	root := t.TempDir()
	// A worker of this node id killed -9 left its directory behind (its
	// pid is gone); another process of the same node id (a second mesh on
	// this host) works beside it: its directory must stay.
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	deadDir := filepath.Join(root, strconv.Itoa(dead.Process.Pid))
	liveDir := filepath.Join(root, strconv.Itoa(os.Getppid()))
	for _, d := range []string{deadDir, liveDir} {
		if err := os.MkdirAll(filepath.Join(d, "cmd-0123456789abcdef-old-1", "sub"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	work := filepath.Join(root, strconv.Itoa(os.Getpid())) // where this process's directories go
	r := New(Config{Files: cache, WorkDir: root})
	defer r.Close()
	sp := &spec.Spec{Name: "cmd", Command: []string{"./spider.sh"}, Files: []string{"spider.sh", "data.txt"}}
	parseIn := func(crawl, want string) {
		t.Helper()
		ans, err := r.Parse(t.Context(), sp, spiderproto.Page{URL: "http://127.0.0.1/p/1", Status: 200, Body: page, Crawl: crawl, Spider: sp.Name})
		if err != nil || len(ans.Items) != 1 || ans.Items[0]["v"] != want {
			t.Fatalf("crawl %s: %+v, %v; want item %s", crawl, ans, err, want)
		}
	}
	dirs := func() []string {
		t.Helper()
		des, err := os.ReadDir(work)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, de := range des {
			names = append(names, de.Name())
		}
		return names
	}
	// waitDirs waits (at most 10 s) for the working directories to be
	// those of the given crawls, one each.
	waitDirs := func(when string, crawls ...string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			got := dirs()
			ok := len(got) == len(crawls)
			for _, c := range crawls {
				n := 0
				for _, d := range got {
					if strings.Contains(d+"-", "-"+c+"-") {
						n++
					}
				}
				ok = ok && n == 1
			}
			if ok {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: working directories %v; want one for each of %v", when, got, crawls)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	parseIn("c1", "v1")
	parseIn("c2", "v1")
	waitDirs("two crawls", "c1", "c2")
	if _, err := os.Stat(deadDir); !os.IsNotExist(err) {
		t.Errorf("the stopped process's directory is still there: %v", err)
	}
	if _, err := os.Stat(filepath.Join(liveDir, "cmd-0123456789abcdef-old-1")); err != nil {
		t.Errorf("a live process's directory was removed: %v", err)
	}
	before := dirs()

	put("data.txt", "v2")
	parseIn("c1", "v2")
	waitDirs("c1 on a new version", "c1", "c2")
	if slices.Equal(dirs(), before) {
		t.Fatalf("c1's working directory %v is the one of the old version", before)
	}

	r.EndCrawl("c1")
	if got := dirs(); len(got) != 1 || !strings.Contains(got[0], "-c2-") {
		t.Fatalf("after c1 ended: working directories %v; want c2's only", got)
	}
	r.Close()
	if _, err := os.Stat(work); !os.IsNotExist(err) {
		t.Fatalf("after Close: this process's directory is still there: %v", err)
	}
}

// A worker killed -9 left its spiders' processes running in its working
// directory (their own and children, with parent 1): a worker starting on
// the host kills them as it removes the directory; a process working
// elsewhere, or in a live worker's directory, is left alone.
func TestStoppedWorkersSpidersKilled(t *testing.T) {
	if _, err := os.Stat("/proc/self/cwd"); err != nil {
		t.Skip("no /proc: orphan spiders are found by their working directory in /proc (Linux)")
	}
	root := t.TempDir()
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	deadDir := filepath.Join(root, strconv.Itoa(dead.Process.Pid), "cmd-0123456789abcdef-c1-1")
	liveDir := filepath.Join(root, strconv.Itoa(os.Getppid()), "cmd-0123456789abcdef-c1-1")
	elsewhere := t.TempDir()
	sleep := func(dir string) *exec.Cmd {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		c := exec.Command("sleep", "300")
		c.Dir = dir
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Process.Kill(); _ = c.Wait() })
		return c
	}
	orphan, inLive, other := sleep(deadDir), sleep(liveDir), sleep(elsewhere)
	exited := make(chan error, 1)
	go func() { exited <- orphan.Wait() }()

	r := New(Config{WorkDir: root})
	defer r.Close()
	select {
	case err := <-exited:
		if err == nil {
			t.Errorf("the orphan exited cleanly; want it killed")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the stopped worker's spider process still runs 10 s after a worker started")
	}
	if _, err := os.Stat(deadDir); !os.IsNotExist(err) {
		t.Errorf("the stopped worker's directory is still there: %v", err)
	}
	for name, c := range map[string]*exec.Cmd{"in a live worker's directory": inLive, "elsewhere": other} {
		if err := c.Process.Signal(syscall.Signal(0)); err != nil {
			t.Errorf("a process working %s was killed: %v", name, err)
		}
	}
}

// TestCommandGetsNoSpecSecrets: a command spider's environment lacks the
// variables its own spec refers to (a header key, a login password):
// they are for the mesh's requests, and a program could read them and
// return them as an item (found by review).
func TestCommandGetsNoSpecSecrets(t *testing.T) {
	if _, err := exec.LookPath("sh"); err != nil {
		t.Fatal("sh is not installed: this test needs it")
	}
	t.Setenv("SPEC_KEY", "k-secret")
	t.Setenv("OTHER_VAR", "visible")
	r := New(Config{})
	defer r.Close()
	sp := &spec.Spec{Name: "envcmd", Request: &spec.Request{Headers: map[string]string{"X-Key": "${env:SPEC_KEY}"}},
		Command: []string{"sh", "-c", `while read -r line; do printf '{"items":[{"key":"%s","other":"%s"}],"links":[]}\n' "$SPEC_KEY" "$OTHER_VAR"; done`}}
	ans, err := parse(t, r, sp)
	if err != nil {
		t.Fatal(err)
	}
	if it := ans.Items[0]; it["key"] != "" || it["other"] != "visible" {
		t.Errorf("the command saw key %q other %q; want no SPEC_KEY and OTHER_VAR", it["key"], it["other"])
	}
}
