package harness

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// SyncBuf is an io.Writer safe for a process's output and a test's reads.
type SyncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuf) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }
func (s *SyncBuf) String() string              { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// Proc is a binary run as a process that tests may kill, freeze, thaw and
// restart. Its output (stdout and stderr, every incarnation) is kept and
// printed when the test fails.
type Proc struct {
	t    testing.TB
	name string
	path string
	args []string
	env  []string // added to the test's environment (CRAWLMESH_* removed)

	out *SyncBuf

	mu     sync.Mutex
	cmd    *exec.Cmd
	done   chan struct{}
	frozen bool
	starts int
}

// StartProc starts bin (a name from [Bins], or a path) with args. The
// process is killed when the test ends.
func StartProc(t testing.TB, name, bin string, args ...string) *Proc {
	t.Helper()
	return StartProcEnv(t, nil, name, bin, args...)
}

// StartProcEnv is [StartProc] with env ("KEY=value") added to the
// environment.
func StartProcEnv(t testing.TB, env []string, name, bin string, args ...string) *Proc {
	t.Helper()
	path := bin
	if !filepath.IsAbs(bin) {
		path = filepath.Join(Bins(t), bin)
	}
	p := &Proc{t: t, name: name, path: path, args: args, env: env, out: &SyncBuf{}}
	p.start()
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			t.Logf("--- output of %s (%s %s), last 150 lines:\n%s", p.name, filepath.Base(p.path),
				strings.Join(p.args, " "), tail(p.out.String(), 150))
		}
	})
	return p
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = append([]string{fmt.Sprintf("[%d lines before]", len(lines)-n)}, lines[len(lines)-n:]...)
	}
	return strings.Join(lines, "\n")
}

func (p *Proc) start() {
	p.t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	p.starts++
	fmt.Fprintf(p.out, "=== harness: start %d of %s at %s\n", p.starts, p.name, time.Now().Format("15:04:05.000"))
	cmd := exec.Command(p.path, p.args...)
	cmd.Stdout, cmd.Stderr = p.out, p.out
	cmd.Env = append(CleanEnv(), p.env...)
	if err := cmd.Start(); err != nil {
		p.t.Fatalf("harness: start %s: %v", p.name, err)
	}
	done := make(chan struct{})
	go func() {
		err := cmd.Wait()
		fmt.Fprintf(p.out, "=== harness: %s exited: %v\n", p.name, err)
		close(done)
	}()
	p.cmd, p.done, p.frozen = cmd, done, false
}

// CleanEnv drops CRAWLMESH_* so a developer's shell cannot change a test.
func CleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "CRAWLMESH_") {
			env = append(env, kv)
		}
	}
	return env
}

// Name is the label given at start.
func (p *Proc) Name() string { return p.name }

// Output is everything the process (all incarnations) wrote so far.
func (p *Proc) Output() string { return p.out.String() }

// PID is the current incarnation's process id.
func (p *Proc) PID() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cmd.Process.Pid
}

// Running reports whether the current incarnation has not exited.
func (p *Proc) Running() bool {
	p.mu.Lock()
	done := p.done
	p.mu.Unlock()
	select {
	case <-done:
		return false
	default:
		return true
	}
}

// Signal sends s to the current incarnation unless it has exited.
func (p *Proc) Signal(s syscall.Signal) {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.done:
	default:
		_ = p.cmd.Process.Signal(s)
	}
}

// kill sends SIGKILL (which also ends a stopped process) and waits.
func (p *Proc) kill() {
	p.Signal(syscall.SIGKILL)
	p.mu.Lock()
	done := p.done
	p.mu.Unlock()
	<-done // SIGKILL cannot be ignored: the wait is short
}

// Kill sends SIGKILL and waits for the process to be gone.
func (p *Proc) Kill() {
	p.t.Helper()
	fmt.Fprintf(p.out, "=== harness: SIGKILL %s at %s\n", p.name, time.Now().Format("15:04:05.000"))
	p.kill()
}

// Freeze stops the process with SIGSTOP: it keeps its sockets and state
// but runs no code until [Proc.Thaw].
func (p *Proc) Freeze() {
	p.t.Helper()
	fmt.Fprintf(p.out, "=== harness: SIGSTOP %s at %s\n", p.name, time.Now().Format("15:04:05.000"))
	p.Signal(syscall.SIGSTOP)
	p.mu.Lock()
	p.frozen = true
	p.mu.Unlock()
}

// Thaw resumes a frozen process with SIGCONT.
func (p *Proc) Thaw() {
	p.t.Helper()
	fmt.Fprintf(p.out, "=== harness: SIGCONT %s at %s\n", p.name, time.Now().Format("15:04:05.000"))
	p.Signal(syscall.SIGCONT)
	p.mu.Lock()
	p.frozen = false
	p.mu.Unlock()
}

// Stop sends SIGTERM and waits up to timeout for a clean exit, then kills;
// it returns the exit code (-1 when it had to kill).
func (p *Proc) Stop(timeout time.Duration) int {
	p.t.Helper()
	p.mu.Lock()
	frozen := p.frozen
	p.mu.Unlock()
	if frozen {
		p.Thaw()
	}
	p.Signal(syscall.SIGTERM)
	code, ok := p.Wait(timeout)
	if !ok {
		p.t.Errorf("harness: %s did not stop within %v of SIGTERM; killed", p.name, timeout)
		p.kill()
		return -1
	}
	return code
}

// Wait waits up to timeout for the process to exit by itself and returns
// its exit code; ok is false if it is still running.
func (p *Proc) Wait(timeout time.Duration) (code int, ok bool) {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	select {
	case <-done:
		return cmd.ProcessState.ExitCode(), true
	case <-time.After(timeout):
		return 0, false
	}
}

// Restart kills the process if it runs and starts it again with the same
// arguments (same id, ports and store).
func (p *Proc) Restart() {
	p.t.Helper()
	if p.Running() {
		p.Kill()
	}
	p.start()
}
