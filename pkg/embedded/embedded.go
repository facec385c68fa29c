// Package embedded runs the nats-server that `crawlmesh up` ships inside
// its binary: JetStream on disk, client port on loopback, with port and
// directory problems reported by the flag that fixes them.
package embedded

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/gofrs/flock"
	"github.com/nats-io/nats-server/v2/server"
)

// Config for the embedded server.
type Config struct {
	Host     string // default 127.0.0.1
	Port     int    // client port; -1 picks a free one
	StoreDir string // JetStream store
	// MaxStore bounds JetStream's disk use (0: the server's default).
	MaxStore int64
	// ProfPort, when set, serves the server's pprof on 127.0.0.1:ProfPort.
	ProfPort int
	// Log, when set, sends the server's own log lines there.
	Log server.Logger
}

// Start starts the server and waits until it accepts connections. It
// holds an exclusive lock on the store directory until the server shuts
// down: a second server on the same directory is refused.
func Start(c Config) (*server.Server, error) {
	if c.Host == "" {
		c.Host = "127.0.0.1"
	}
	if err := os.MkdirAll(c.StoreDir, 0o755); err != nil {
		return nil, fmt.Errorf("--data %s: %w", c.StoreDir, err)
	}
	// nats-server does not lock its store: two servers on one directory
	// corrupt it (records lost, a server spinning after SIGTERM). The
	// lock goes with this server, or with the process if it dies.
	lock := flock.New(filepath.Join(c.StoreDir, "crawlmesh.lock"))
	locked, err := lock.TryLock()
	if err != nil {
		return nil, fmt.Errorf("--data %s: lock: %w", c.StoreDir, err)
	}
	if !locked {
		return nil, fmt.Errorf("--data %s is in use by another crawlmesh up (or bench node) on this host: give this one its own --data, or stop that one", c.StoreDir)
	}
	s, err := start(c)
	if err != nil {
		_ = lock.Unlock()
		return nil, err
	}
	go func() {
		s.WaitForShutdown()
		_ = lock.Unlock()
	}()
	return s, nil
}

func start(c Config) (*server.Server, error) {
	if c.Port != -1 {
		if c.Port < 1 || c.Port > 65535 {
			return nil, fmt.Errorf("--nats-port %d: want 1-65535", c.Port)
		}
		// The server reports a busy port only in its log and then exits the
		// process; check first so the error names the flag.
		addr := net.JoinHostPort(c.Host, strconv.Itoa(c.Port))
		ln, err := net.Listen("tcp", addr)
		if errors.Is(err, syscall.EADDRINUSE) {
			return nil, fmt.Errorf("NATS client port %s is already in use (another nats-server or crawlmesh up?); pick another with --nats-port", addr)
		}
		if err != nil {
			return nil, fmt.Errorf("NATS client port %s: %w (change it with --nats-port)", addr, err)
		}
		_ = ln.Close()
	}
	o := &server.Options{
		ServerName: "crawlmesh-up", Host: c.Host, Port: c.Port,
		JetStream: true, StoreDir: c.StoreDir, JetStreamMaxStore: c.MaxStore,
		NoSigs: true, NoLog: c.Log == nil, ProfPort: c.ProfPort,
	}
	s, err := server.NewServer(o)
	if err != nil {
		return nil, fmt.Errorf("embedded nats-server: %w", err)
	}
	if c.Log != nil {
		s.SetLoggerV2(c.Log, false, false, false)
	}
	go s.Start()
	if !s.ReadyForConnections(15 * time.Second) {
		s.Shutdown()
		return nil, fmt.Errorf("embedded nats-server did not start within 15s (store %s)", c.StoreDir)
	}
	return s, nil
}
