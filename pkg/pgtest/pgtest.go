// Package pgtest runs a throwaway PostgreSQL server for tests: initdb into
// a temporary directory, postgres on a free loopback port, password
// authentication, and Stop/Start/Kill to test what a database restart does
// to its clients. It is imported only by tests, like net/http/httptest.
//
// The binaries come from Debian's postgresql package
// (/usr/lib/postgresql/*/bin, the highest version), from $PATH, or from
// $PGTEST_BIN. When none is found the test is skipped with a loud reason,
// except under CI=true, where it fails: .ci/run installs the package.
package pgtest

import (
	"context"

	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// User and Password of the server's superuser.
const (
	User     = "crawlmesh"
	Password = "pgtest-Sup3r-s3cret-pw"
)

// Server is one PostgreSQL server.
type Server struct {
	t    testing.TB
	bin  string
	dir  string // data directory
	Port int
	cred *syscall.Credential // non-nil when run as user postgres (we are root)

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
	out  *strings.Builder
}

// Bin finds the directory of initdb and postgres, "" when there is none.
func Bin() string {
	if d := os.Getenv("PGTEST_BIN"); d != "" {
		return d
	}
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/postgres")
	sort.Slice(matches, func(i, j int) bool { return version(matches[i]) > version(matches[j]) })
	if len(matches) > 0 {
		return filepath.Dir(matches[0])
	}
	if p, err := exec.LookPath("postgres"); err == nil {
		if _, err := exec.LookPath("initdb"); err == nil {
			return filepath.Dir(p)
		}
	}
	return ""
}

func version(p string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(p))))
	return v
}

// Require returns the binaries' directory, skipping the test when there is
// none (failing it under CI=true).
func Require(t testing.TB) string {
	t.Helper()
	bin := Bin()
	if bin == "" {
		msg := "PostgreSQL NOT FOUND: this test needs initdb and postgres (Debian: apt-get install postgresql; or set PGTEST_BIN)"
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip("SKIPPED — " + msg)
	}
	return bin
}

// Start initialises and starts a server; it is stopped at test cleanup.
func Start(t testing.TB) *Server {
	t.Helper()
	bin := Require(t)
	dir, err := os.MkdirTemp("", "pgtest-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	s := &Server{t: t, bin: bin, dir: filepath.Join(dir, "data")}
	if os.Geteuid() == 0 {
		// initdb refuses to run as root: run the server as user postgres.
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Fatalf("pgtest: running as root and there is no user postgres to run the server as: %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		s.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		if err := os.Chmod(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	pw := filepath.Join(dir, "pw")
	if err := os.WriteFile(pw, []byte(Password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if s.cred != nil {
		_ = os.Chown(pw, int(s.cred.Uid), int(s.cred.Gid))
	}
	cmd := exec.Command(filepath.Join(bin, "initdb"), "-D", s.dir, "-U", User, "--pwfile="+pw,
		"--auth=scram-sha-256", "-E", "UTF8", "--locale=C", "--no-sync")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("pgtest: initdb: %v\n%s", err, out)
	}
	s.Port = freePort(t)
	s.Start()
	t.Cleanup(s.Stop)
	return s
}

func freePort(t testing.TB) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// URL is the server's connection URL with password pw in it ("" for
// none: the caller adds it).
func (s *Server) URL(pw string) string {
	if pw == "" {
		return fmt.Sprintf("postgres://%s@127.0.0.1:%d/postgres?sslmode=disable", User, s.Port)
	}
	return fmt.Sprintf("postgres://%s:%s@127.0.0.1:%d/postgres?sslmode=disable", User, pw, s.Port)
}

// Start starts the server (again) and waits until it takes connections.
func (s *Server) Start() {
	s.t.Helper()
	s.mu.Lock()
	// fsync off is safe against a killed server (the kernel keeps what was
	// written), not against a machine crash, which no test makes.
	// synchronous_commit stays on: with it off a killed server loses the
	// last commits it had already confirmed (seen in TestPostgresExactlyOnce
	// as rows missing after a SIGKILL), which is not what is tested.
	cmd := exec.Command(filepath.Join(s.bin, "postgres"), "-D", s.dir, "-p", strconv.Itoa(s.Port),
		"-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories="+filepath.Dir(s.dir),
		"-c", "fsync=off", "-c", "full_page_writes=off",
		"-c", "max_connections=50", "-c", "shared_buffers=32MB")
	out := &strings.Builder{}
	cmd.Stdout, cmd.Stderr = &syncWriter{b: out, mu: &s.mu}, &syncWriter{b: out, mu: &s.mu}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred, Setpgid: true}
	if err := cmd.Start(); err != nil {
		s.mu.Unlock()
		s.t.Fatalf("pgtest: start postgres: %v", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	s.cmd, s.done, s.out = cmd, done, out
	s.mu.Unlock()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		c, err := pgx.Connect(ctx, s.URL(Password))
		if err == nil {
			_ = c.Close(ctx)
			cancel()
			return
		}
		cancel()
		select {
		case <-done:
			s.t.Fatalf("pgtest: postgres exited at start:\n%s", s.Output())
		default:
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("pgtest: postgres not ready in 30s: %v\n%s", err, s.Output())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Output is what the server wrote.
func (s *Server) Output() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.out == nil {
		return ""
	}
	return s.out.String()
}

// Stop shuts the server down (fast shutdown: clients are disconnected)
// and waits for it to exit.
func (s *Server) Stop() { s.signal(syscall.SIGINT) }

// Kill kills the server and its children at once (SIGKILL).
func (s *Server) Kill() { s.signal(syscall.SIGKILL) }

func (s *Server) signal(sig syscall.Signal) {
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	if sig == syscall.SIGKILL {
		_ = syscall.Kill(-cmd.Process.Pid, sig)
	} else {
		_ = cmd.Process.Signal(sig)
	}
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
	}
}

// Connect opens a connection for the test's own queries; the caller
// closes it.
func (s *Server) Connect(ctx context.Context) (*pgx.Conn, error) {
	return pgx.Connect(ctx, s.URL(Password))
}

// Conn opens a connection for the test's own queries, closed when the
// test ends (so not for polling loops: use Connect).
func (s *Server) Conn(t testing.TB) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, s.URL(Password))
	if err != nil {
		t.Fatalf("pgtest: connect: %v", err)
	}
	t.Cleanup(func() { _ = c.Close(context.Background()) })
	return c
}

type syncWriter struct {
	mu *sync.Mutex
	b  *strings.Builder
}

func (w *syncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}
