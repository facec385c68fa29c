package cmdspider_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/crawlmesh/crawlmesh/pkg/cmdspider"
	"github.com/crawlmesh/crawlmesh/pkg/spiderproto"
)

// The test binary doubles as the spider: with helperEnv set it runs
// helperSpider instead of the tests, so unit tests need no interpreter.
const helperEnv = "CMDSPIDER_TEST_HELPER"

func TestMain(m *testing.M) {
	switch os.Getenv(helperEnv) {
	case "":
		goleak.VerifyTestMain(m)
	case "spider":
		helperSpider()
		os.Exit(0)
	case "sleep":
		time.Sleep(time.Hour)
		os.Exit(0)
	case "die":
		fmt.Fprintln(os.Stderr, "Traceback: cannot import name 'bs4'")
		os.Exit(2)
	case "owner":
		helperOwner()
	default:
		os.Exit(99)
	}
}

// helperArgv runs the helper spider.
func helperArgv() []string { return []string{os.Args[0], "-test.run=^$"} }

// helperEnvs selects a helper mode.
func helperEnvs(mode string, extra ...string) []string {
	// A race-enabled binary sleeps 1 s at exit unless told not to.
	return append([]string{helperEnv + "=" + mode, "GORACE=atexit_sleep_ms=0"}, extra...)
}

// helperSpider answers each page according to its body:
//
//	""/other     one item {url, pid, n, price: 12.50, env...}
//	sleep:D      the same after D
//	garbage      a line that is not JSON
//	double       two answers
//	hang         starts a child in its group, reports "child PID" on stderr, never answers
//	stderr:TEXT  TEXT on stderr, then the item
//
// With CMDSPIDER_EXIT_ON=N it exits with status 3 on its Nth page; with
// CMDSPIDER_EXIT0_AFTER=N with status 0 after answering its Nth; with
// CMDSPIDER_BANNER set it prints a line before reading any page.
func helperSpider() {
	exitOn, _ := strconv.Atoi(os.Getenv("CMDSPIDER_EXIT_ON"))
	exit0After, _ := strconv.Atoi(os.Getenv("CMDSPIDER_EXIT0_AFTER"))
	if os.Getenv("CMDSPIDER_BANNER") != "" {
		fmt.Println("spider v1 ready")
	}
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(nil, 64<<20)
	out := json.NewEncoder(os.Stdout)
	n := 0
	for in.Scan() {
		n++
		var page spiderproto.Page
		if err := json.Unmarshal(in.Bytes(), &page); err != nil {
			fmt.Fprintln(os.Stderr, "bad page:", err)
			os.Exit(1)
		}
		if n == exitOn {
			fmt.Fprintf(os.Stderr, "dying on page %d\n", n)
			os.Exit(3)
		}
		answer := map[string]any{
			"items": []map[string]any{{
				"url": page.URL, "pid": os.Getpid(), "n": n, "price": json.Number("12.50"),
				"secret": os.Getenv("CRAWLMESH_SECRET") + os.Getenv("NATS_PASSWORD") + os.Getenv("SPEC_SECRET"), "extra": os.Getenv("EXTRA"),
				"tags": []any{"a", nil, 2},
			}},
			"links": []string{"/next"},
		}
		body := page.Body
		switch {
		case strings.HasPrefix(body, "sleep:"):
			d, _ := time.ParseDuration(strings.TrimPrefix(body, "sleep:"))
			time.Sleep(d)
		case body == "garbage":
			fmt.Println("this is not json <<<")
			continue
		case body == "double":
			_ = out.Encode(answer)
		case body == "hang":
			c := exec.Command(os.Args[0], "-test.run=^$")
			c.Env = append(os.Environ(), helperEnv+"=sleep", "GORACE=atexit_sleep_ms=0")
			if err := c.Start(); err != nil {
				fmt.Fprintln(os.Stderr, "cannot start child:", err)
				os.Exit(1)
			}
			fmt.Fprintf(os.Stderr, "child %d\n", c.Process.Pid)
			time.Sleep(time.Hour)
		case strings.HasPrefix(body, "stderr:"):
			fmt.Fprintln(os.Stderr, strings.TrimPrefix(body, "stderr:"))
		}
		_ = out.Encode(answer)
		if n == exit0After {
			os.Exit(0)
		}
	}
}

// helperOwner is a worker as a spider sees it: it runs the helper spider
// through a Pool, gives it a page it works on for an hour, prints its pid
// and waits to be killed.
func helperOwner() {
	p := cmdspider.NewPool(cmdspider.Config{Name: "t", Argv: helperArgv(), Env: helperEnvs("spider"), Size: 1})
	ans, err := p.Parse(context.Background(), spiderproto.Page{URL: "http://x.test/", Body: "ok"})
	if err != nil || len(ans.Items) != 1 {
		fmt.Fprintln(os.Stderr, "owner:", ans, err)
		os.Exit(1)
	}
	// The spider busy on a page does not read its stdin, so it cannot see
	// the pipe close when the owner dies.
	go func() {
		_, _ = p.Parse(context.Background(), spiderproto.Page{URL: "http://x.test/2", Body: "sleep:1h"})
	}()
	time.Sleep(200 * time.Millisecond)
	fmt.Println(ans.Items[0]["pid"])
	time.Sleep(time.Hour)
	os.Exit(0)
}

// alive reports whether pid is a live (not zombie) process.
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// pid (comm) STATE ...; comm may hold spaces, so look after the last ')'.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}

func waitGone(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for alive(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("process %d still alive", pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
