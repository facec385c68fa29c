package cmdspider_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/crawlmesh/crawlmesh/pkg/cmdspider"
	"github.com/crawlmesh/crawlmesh/pkg/spiderproto"
)

func newPool(t *testing.T, cfg cmdspider.Config) *cmdspider.Pool {
	t.Helper()
	if cfg.Name == "" {
		cfg.Name = "t"
	}
	if cfg.Argv == nil {
		cfg.Argv = helperArgv()
	}
	if cfg.Env == nil {
		cfg.Env = helperEnvs("spider")
	}
	p := cmdspider.NewPool(cfg)
	t.Cleanup(p.Close)
	return p
}

func page(i int, body string) spiderproto.Page {
	return spiderproto.Page{URL: fmt.Sprintf("http://site.test/p/%d.html", i), Status: 200,
		Headers: map[string]string{"content-type": "text/html"}, Body: body, Crawl: "c1", Spider: "t"}
}

func parse(t *testing.T, p *cmdspider.Pool, pg spiderproto.Page) spiderproto.Answer {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	a, err := p.Parse(ctx, pg)
	if err != nil {
		t.Fatalf("Parse(%s): %v", pg.URL, err)
	}
	if len(a.Items) != 1 || a.Items[0]["url"] != pg.URL {
		t.Fatalf("Parse(%s) = %+v: not this page's answer", pg.URL, a)
	}
	return a
}

func pid(a spiderproto.Answer) string { return a.Items[0]["pid"].(string) }

func TestAnswersInOrderUnderConcurrency(t *testing.T) {
	p := newPool(t, cmdspider.Config{Size: 4})
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		pids = map[string]int{}
	)
	for i := range 32 {
		wg.Go(func() {
			pg := page(i, "sleep:"+strconv.Itoa(rand.IntN(20))+"ms")
			a, err := p.Parse(context.Background(), pg)
			if err != nil {
				t.Errorf("page %d: %v", i, err)
				return
			}
			if len(a.Items) != 1 || a.Items[0]["url"] != pg.URL {
				t.Errorf("page %d got %+v", i, a)
				return
			}
			mu.Lock()
			pids[pid(a)]++
			mu.Unlock()
		})
	}
	wg.Wait()
	if len(pids) < 2 || len(pids) > 4 {
		t.Errorf("pages spread over %d processes, want 2..4: %v", len(pids), pids)
	}
	// Normalised values: numbers as their text, lists of strings, no nulls.
	a := parse(t, p, page(99, ""))
	it := a.Items[0]
	if it["price"] != "12.50" || !reflect.DeepEqual(it["tags"], []string{"a", "2"}) {
		t.Errorf("item not normalised: %#v", it)
	}
	if !reflect.DeepEqual(a.Links, []string{"/next"}) {
		t.Errorf("links = %v", a.Links)
	}
}

func TestSerialUseKeepsOneProcess(t *testing.T) {
	p := newPool(t, cmdspider.Config{Size: 4})
	first := pid(parse(t, p, page(0, "")))
	for i := 1; i < 5; i++ {
		if got := pid(parse(t, p, page(i, ""))); got != first {
			t.Fatalf("page %d went to process %s, want the warm %s", i, got, first)
		}
	}
}

func TestGarbageRecyclesProcess(t *testing.T) {
	p := newPool(t, cmdspider.Config{Name: "shop"})
	before := pid(parse(t, p, page(0, "")))
	_, err := p.Parse(context.Background(), page(1, "garbage"))
	if !errors.Is(err, cmdspider.ErrGarbage) {
		t.Fatalf("garbage: err = %v, want ErrGarbage", err)
	}
	for _, want := range []string{"command spider shop", "http://site.test/p/1.html", `"this is not json <<<"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	n, _ := strconv.Atoi(before)
	waitGone(t, n)
	a := parse(t, p, page(2, ""))
	if pid(a) == before || a.Items[0]["n"] != "1" {
		t.Errorf("after garbage: pid %s n %s, want a fresh process", pid(a), a.Items[0]["n"])
	}
}

func TestLongGarbageIsQuotedShort(t *testing.T) {
	dir := t.TempDir()
	script := filepath.Join(dir, "spider.sh")
	// Not a shell of ours: the script is the user's command.
	if err := os.WriteFile(script, []byte("#!/bin/sh\nread line\nhead -c 100000 /dev/zero | tr '\\0' x\necho\nsleep 5\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	p := newPool(t, cmdspider.Config{Name: "long", Argv: []string{"./spider.sh"}, Dir: dir, Env: []string{}})
	_, err := p.Parse(context.Background(), page(0, ""))
	if !errors.Is(err, cmdspider.ErrGarbage) || len(err.Error()) > 400 || !strings.Contains(err.Error(), "xxxx") {
		t.Fatalf("err = %v", err)
	}

	// A line over MaxLine is garbage at once, not a wait for the process.
	huge := filepath.Join(dir, "huge.sh")
	src := fmt.Sprintf("#!/bin/sh\nread line\nhead -c %d /dev/zero | tr '\\0' x\necho\nsleep 5\n", cmdspider.MaxLine+1024)
	if err := os.WriteFile(huge, []byte(src), 0o755); err != nil {
		t.Fatal(err)
	}
	p2 := newPool(t, cmdspider.Config{Name: "huge", Argv: []string{"./huge.sh"}, Dir: dir, Env: []string{}})
	start := time.Now()
	_, err = p2.Parse(context.Background(), page(0, ""))
	if !errors.Is(err, cmdspider.ErrGarbage) || !strings.Contains(err.Error(), "longer than 16 MiB") || time.Since(start) > 5*time.Second {
		t.Fatalf("err = %v after %v", err, time.Since(start))
	}
}

// A second line after a page's answer puts the process out of step: it is
// restarted and the next page goes to a fresh one, not failed (found by
// review: the innocent next page failed and spent an attempt). The
// crawl's logs say which page's answer had the extra line.
func TestSecondAnswerLineRestartsTheProcess(t *testing.T) {
	var mu sync.Mutex
	var stderr []string
	p := newPool(t, cmdspider.Config{Name: "twice", Stderr: func(l string) { mu.Lock(); stderr = append(stderr, l); mu.Unlock() }})
	parse(t, p, page(0, "double"))
	time.Sleep(100 * time.Millisecond) // let the extra line arrive
	a := parse(t, p, page(1, ""))
	if a.Items[0]["n"] != "1" {
		t.Errorf("the next page went to the process on its page %s, want a fresh one", a.Items[0]["n"])
	}
	mu.Lock()
	said := strings.Join(stderr, "\n")
	mu.Unlock()
	if !strings.Contains(said, "wrote a second line after its answer for http://site.test/p/0.html") {
		t.Errorf("the crawl's logs say %q, want the page whose answer had a second line", said)
	}
	parse(t, p, page(2, ""))
}

// A line before any answer (a banner, a debugging print) is garbage for
// the page it came before, quoted: no fresh process would do better.
func TestLineBeforeAnyPageIsGarbage(t *testing.T) {
	p := newPool(t, cmdspider.Config{Name: "banner", Env: helperEnvs("spider", "CMDSPIDER_BANNER=1")})
	_, err := p.Parse(context.Background(), page(0, ""))
	if !errors.Is(err, cmdspider.ErrGarbage) || !strings.Contains(err.Error(), "spider v1 ready") {
		t.Fatalf("err = %v, want a garbage error quoting the banner", err)
	}
}

// A spider that leaves with status 0 after some pages (as one serving N
// pages then exiting does) fails none: a page written as it exited goes
// to a fresh process (found by review: 21 pages of 612 failed).
func TestCleanExitAfterAnswerFailsNoPage(t *testing.T) {
	p := newPool(t, cmdspider.Config{Name: "leaver", Env: helperEnvs("spider", "CMDSPIDER_EXIT0_AFTER=2")})
	for i := range 7 {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err := p.Parse(ctx, page(i, ""))
		cancel()
		if err != nil {
			t.Fatalf("page %d: %v", i, err)
		}
	}
}

func TestExitOnThirdPage(t *testing.T) {
	p := newPool(t, cmdspider.Config{Name: "crashy", Env: helperEnvs("spider", "CMDSPIDER_EXIT_ON=3")})
	parse(t, p, page(1, ""))
	parse(t, p, page(2, ""))
	_, err := p.Parse(context.Background(), page(3, ""))
	if !errors.Is(err, cmdspider.ErrCrashed) {
		t.Fatalf("page 3: err = %v, want ErrCrashed", err)
	}
	for _, want := range []string{"command spider crashy", "exited with status 3", "p/3.html", "dying on page 3"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	start := time.Now()
	a := parse(t, p, page(4, "")) // waits out the back-off rather than failing
	if a.Items[0]["n"] != "1" {
		t.Errorf("page 4 went to a process on its page %s, want a restarted one", a.Items[0]["n"])
	}
	if d := time.Since(start); d < 80*time.Millisecond {
		t.Errorf("restart after %v: no back-off", d)
	}
	parse(t, p, page(5, ""))
}

func TestCrashAtStartupReportsStderr(t *testing.T) {
	p := newPool(t, cmdspider.Config{Name: "broken", Env: helperEnvs("die")})
	for range 2 {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := p.Parse(ctx, page(0, ""))
		cancel()
		if !errors.Is(err, cmdspider.ErrCrashed) || !strings.Contains(err.Error(), "exited with status 2") ||
			!strings.Contains(err.Error(), "cannot import name 'bs4'") {
			t.Fatalf("err = %v", err)
		}
	}
}

func TestBackoffWaitIsBoundedByContext(t *testing.T) {
	p := newPool(t, cmdspider.Config{Env: helperEnvs("die")})
	for range 4 { // back-off now 800 ms
		_, _ = p.Parse(context.Background(), page(0, ""))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := p.Parse(ctx, page(0, ""))
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 500*time.Millisecond {
		t.Fatalf("err = %v after %v, want the context's deadline", err, time.Since(start))
	}
}

func TestHangTimesOutAndKillsGroup(t *testing.T) {
	var (
		mu    sync.Mutex
		child int
	)
	p := newPool(t, cmdspider.Config{Name: "slow", Timeout: 500 * time.Millisecond, Stderr: func(line string) {
		if v, ok := strings.CutPrefix(line, "child "); ok {
			mu.Lock()
			child, _ = strconv.Atoi(v)
			mu.Unlock()
		}
	}})
	leader, _ := strconv.Atoi(pid(parse(t, p, page(0, ""))))
	start := time.Now()
	_, err := p.Parse(context.Background(), page(1, "hang"))
	took := time.Since(start)
	if !errors.Is(err, cmdspider.ErrTimeout) || err.Error() != "command spider slow timed out after 500ms on http://site.test/p/1.html" {
		t.Fatalf("err = %v", err)
	}
	if took > 1500*time.Millisecond {
		t.Errorf("timeout took %v, want within Timeout+1s", took)
	}
	mu.Lock()
	c := child
	mu.Unlock()
	if c == 0 {
		t.Fatal("the hanging spider's child pid never reached the stderr callback")
	}
	waitGone(t, leader)
	waitGone(t, c) // the whole group went
	parse(t, p, page(2, ""))
}

func TestContextCancelRecyclesWithoutBackoff(t *testing.T) {
	p := newPool(t, cmdspider.Config{Timeout: 10 * time.Second})
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err := p.Parse(ctx, page(0, "hang"))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v", err)
	}
	parse(t, p, page(1, ""))
}

func TestStderrLines(t *testing.T) {
	var (
		mu    sync.Mutex
		lines []string
	)
	p := newPool(t, cmdspider.Config{Stderr: func(l string) { mu.Lock(); lines = append(lines, l); mu.Unlock() }})
	parse(t, p, page(0, "stderr:hello from the spider"))
	long := strings.Repeat("y", 3*cmdspider.MaxStderrLine)
	parse(t, p, page(1, "stderr:"+long))
	parse(t, p, page(2, "stderr:after"))
	deadline := time.Now().Add(3 * time.Second)
	for {
		mu.Lock()
		got := append([]string(nil), lines...)
		mu.Unlock()
		if len(got) >= 3 {
			if got[0] != "hello from the spider" || len(got[1]) != cmdspider.MaxStderrLine || got[2] != "after" || len(got) != 3 {
				t.Fatalf("stderr lines = %q (lengths %d)", got[0], len(got))
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("stderr lines = %q", got)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestCannotStart(t *testing.T) {
	p := newPool(t, cmdspider.Config{Name: "py", Argv: []string{"no-such-python3-xyz", "x.py"}})
	_, err := p.Parse(context.Background(), page(0, ""))
	var se *cmdspider.StartError
	if !errors.As(err, &se) {
		t.Fatalf("err = %v (%T), want *StartError", err, err)
	}
	want := `command spider py: cannot start ["no-such-python3-xyz" "x.py"]: exec: "no-such-python3-xyz": executable file not found in $PATH`
	if err.Error() != want {
		t.Errorf("err = %q\nwant  %q", err, want)
	}

	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "spider.py"), []byte("print()\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	p2 := newPool(t, cmdspider.Config{Name: "noexec", Argv: []string{"./spider.py"}, Dir: dir})
	_, err = p2.Parse(context.Background(), page(0, ""))
	if !errors.As(err, &se) || !strings.Contains(err.Error(), "permission denied") {
		t.Fatalf("err = %v, want a permission-denied StartError", err)
	}
}

func TestEnvironmentHidesWorkerSecrets(t *testing.T) {
	t.Setenv("CRAWLMESH_SECRET", "s3cret")
	t.Setenv("NATS_PASSWORD", "pw")
	t.Setenv("SPEC_SECRET", "the spec's") // a variable the spider's spec refers to
	p := newPool(t, cmdspider.Config{Env: helperEnvs("spider", "EXTRA=yes"), Hide: []string{"SPEC_SECRET"}})
	it := parse(t, p, page(0, "")).Items[0]
	if it["secret"] != "" || it["extra"] != "yes" {
		t.Errorf("spider saw secret %q extra %q", it["secret"], it["extra"])
	}
}

func TestCloseStopsEverything(t *testing.T) {
	p := cmdspider.NewPool(cmdspider.Config{Name: "t", Argv: helperArgv(), Env: helperEnvs("spider"), Size: 3})
	var pids []int
	var wg sync.WaitGroup
	var mu sync.Mutex
	for i := range 3 {
		wg.Go(func() {
			a, err := p.Parse(context.Background(), page(i, "sleep:50ms"))
			if err != nil {
				t.Error(err)
				return
			}
			n, _ := strconv.Atoi(pid(a))
			mu.Lock()
			pids = append(pids, n)
			mu.Unlock()
		})
	}
	wg.Wait()
	// One page in flight while closing: it fails, Close waits for it.
	errc := make(chan error, 1)
	go func() {
		_, err := p.Parse(context.Background(), page(9, "sleep:10s"))
		errc <- err
	}()
	time.Sleep(100 * time.Millisecond)
	start := time.Now()
	p.Close()
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("Close took %v", d)
	}
	if err := <-errc; !errors.Is(err, cmdspider.ErrClosed) {
		t.Errorf("in-flight Parse: err = %v, want ErrClosed", err)
	}
	for _, n := range pids {
		if alive(n) {
			t.Errorf("process %d alive after Close", n)
		}
	}
	if _, err := p.Parse(context.Background(), page(0, "")); !errors.Is(err, cmdspider.ErrClosed) {
		t.Errorf("Parse after Close: %v", err)
	}
	p.Close() // twice is fine
}

// A worker killed -9 (or out of memory) takes its spider processes with
// it: they were left running with parent 1 (found by review).
func TestSpiderDiesWithItsWorker(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the kernel's parent-death signal is Linux's")
	}
	owner := exec.Command(os.Args[0], "-test.run=^$")
	owner.Env = append(os.Environ(), helperEnvs("owner")...)
	out, err := owner.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := owner.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = owner.Process.Kill(); _ = owner.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("the owner printed no spider pid: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil || !alive(pid) {
		t.Fatalf("spider pid %q: %v, alive %v", line, err, alive(pid))
	}
	t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGKILL) })
	if err := owner.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = owner.Wait()
	waitGone(t, pid)
}
