package harness

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

var (
	binOnce sync.Once
	binDir  string
	binErr  error
)

// Bins builds master, worker, crawlmesh, nats-server and the nats CLI
// (both from the module graph, the versions go.mod pins) once per test
// binary and returns their directory. It skips the test under -short.
func Bins(t testing.TB) string {
	t.Helper()
	if testing.Short() {
		t.Skip("harness: builds and runs binaries")
	}
	binOnce.Do(func() { binDir, binErr = build() })
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binDir
}

func build() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("harness: go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", fmt.Errorf("harness: not inside the crawlmesh module")
	}
	dir, err := os.MkdirTemp("", "crawlmesh-harness-bin-")
	if err != nil {
		return "", err
	}
	// One go build for all: it builds them in parallel and writes each
	// main package into dir under its own name.
	cmd := exec.Command("go", "build", "-o", dir+string(filepath.Separator),
		"./services/master", "./services/worker", "./services/crawlmesh", "github.com/nats-io/nats-server/v2",
		"github.com/nats-io/natscli/nats")
	cmd.Dir = filepath.Dir(gomod)
	if b, err := cmd.CombinedOutput(); err != nil {
		_ = os.RemoveAll(dir)
		return "", fmt.Errorf("harness: go build: %v\n%s", err, b)
	}
	return dir, nil
}

// Main runs the tests of m, then removes the binaries Bins built. Call it
// from TestMain: os.Exit(harness.Main(m)).
func Main(m *testing.M) int {
	code := m.Run()
	if binDir != "" {
		_ = os.RemoveAll(binDir)
	}
	return code
}
