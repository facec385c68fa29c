package harness

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/crawlmesh/crawlmesh/pkg/crawlctl"
	"github.com/crawlmesh/crawlmesh/pkg/mesh"
)

// CLI runs the crawlmesh binary against one mesh.
type CLI struct {
	t   testing.TB
	url string
	// Env is added to every run's environment (credentials, say).
	Env []string
	// Ran, when set, sees every run's output (to search it for secrets).
	Ran func(stdout, stderr string)
}

// NewCLI returns a runner of crawlmesh with --nats url.
func NewCLI(t testing.TB, url string) *CLI { return &CLI{t: t, url: url} }

// Run runs crawlmesh args (at most a minute) and returns its stdout,
// stderr and exit code.
func (c *CLI) Run(args ...string) (stdout, stderr string, code int) {
	c.t.Helper()
	return c.run(time.Minute, args...)
}

func (c *CLI) run(timeout time.Duration, args ...string) (string, string, int) {
	c.t.Helper()
	o, e, code := RunBinEnv(c.t, timeout, c.Env, "crawlmesh", append(args, "--nats", c.url)...)
	if c.Ran != nil {
		c.Ran(o, e)
	}
	return o, e, code
}

// RunBin runs bin (a name from [Bins]) with args to completion and returns
// its stdout, stderr and exit code; it fails the test if bin cannot start
// or runs longer than timeout.
func RunBin(t testing.TB, timeout time.Duration, bin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	return RunBinEnv(t, timeout, nil, bin, args...)
}

// RunBinEnv is [RunBin] with env ("KEY=value") added to the environment.
func RunBinEnv(t testing.TB, timeout time.Duration, env []string, bin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(Bins(t), bin), args...)
	cmd.Env = append(CleanEnv(), env...)
	// A child it left running (killed at the timeout) must not hold the
	// output pipes, and the test, for good.
	cmd.WaitDelay = 10 * time.Second
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	if _, ok := err.(*exec.ExitError); err != nil && !ok {
		t.Fatalf("harness: run %s %s: %v", bin, strings.Join(args, " "), err)
	}
	if ctx.Err() != nil {
		t.Fatalf("harness: %s %s did not finish within %v\n%s%s", bin, strings.Join(args, " "), timeout, o.String(), e.String())
	}
	return o.String(), e.String(), cmd.ProcessState.ExitCode()
}

// Must runs crawlmesh args and fails the test unless it exits 0; it
// returns stdout.
func (c *CLI) Must(args ...string) string {
	c.t.Helper()
	out, errOut, code := c.Run(args...)
	if code != 0 {
		c.t.Fatalf("harness: crawlmesh %s: exit %d\n%s%s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}

// Apply stores a spider spec (YAML), retrying for up to 30s while no
// master has created the buckets yet.
func (c *CLI) Apply(spec string) {
	c.t.Helper()
	f := filepath.Join(c.t.TempDir(), "spider.yaml")
	if err := os.WriteFile(f, []byte(spec), 0o644); err != nil {
		c.t.Fatal(err)
	}
	var last string
	Eventually(c.t, 30*time.Second, "crawlmesh spider apply", func() bool {
		out, errOut, code := c.Run("spider", "apply", "-f", f)
		last = out + errOut
		return code == 0
	}, func() string { return last })
}

// Start starts a crawl of spider and returns its id.
func (c *CLI) Start(spider string) string {
	c.t.Helper()
	id := strings.TrimSpace(c.Must("crawl", "start", spider))
	if !strings.HasPrefix(id, spider+"-") {
		c.t.Fatalf("harness: crawl start printed %q, want the crawl id alone", id)
	}
	return id
}

// Status is `crawl status ID -o json`.
func (c *CLI) Status(id string) crawlctl.Status {
	c.t.Helper()
	var st crawlctl.Status
	out := c.Must("crawl", "status", id, "-o", "json")
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		c.t.Fatalf("harness: crawl status -o json: %v\n%s", err, out)
	}
	return st
}

// Wait runs `crawl wait ID` for at most timeout; it returns nil when the
// command says the crawl completed.
func (c *CLI) Wait(id string, timeout time.Duration) error {
	c.t.Helper()
	out, errOut, code := c.run(timeout, "crawl", "wait", id)
	if code != 0 {
		return fmt.Errorf("crawl wait %s: exit %d: %s%s", id, code, out, errOut)
	}
	return nil
}

// Export returns every item `results export ID --format jsonl` writes.
func (c *CLI) Export(id string) []mesh.Item {
	c.t.Helper()
	f := filepath.Join(c.t.TempDir(), "items.jsonl")
	c.Must("results", "export", id, "--format", "jsonl", "--out", f)
	fh, err := os.Open(f)
	if err != nil {
		c.t.Fatal(err)
	}
	defer fh.Close()
	var items []mesh.Item
	sc := bufio.NewScanner(fh)
	sc.Buffer(make([]byte, 0, 64<<10), 4<<20)
	for sc.Scan() {
		var it mesh.Item
		if err := json.Unmarshal(sc.Bytes(), &it); err != nil {
			c.t.Fatalf("harness: export line %q: %v", sc.Text(), err)
		}
		if it.Crawl != id {
			c.t.Errorf("harness: exported item of crawl %q in the export of %s", it.Crawl, id)
		}
		items = append(items, it)
	}
	if err := sc.Err(); err != nil {
		c.t.Fatal(err)
	}
	return items
}
