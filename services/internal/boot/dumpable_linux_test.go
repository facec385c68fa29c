package boot

import (
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// TestUndumpable: a process of the same user (a command spider) cannot
// read an undumpable process's environment from /proc; it could before
// (found by review: the worker's NATS password). The process under test
// is this test binary run again, as nobody when the test runs as root
// (root reads any /proc file).
func TestUndumpable(t *testing.T) {
	if os.Getenv("UNDUMPABLE_CHILD") != "" {
		undumpableChild()
		return
	}
	for _, protect := range []bool{false, true} {
		out := runChild(t, protect)
		leaked := strings.Contains(out, "SECRET_MARK=s3cr3t")
		if protect && leaked {
			t.Errorf("an undumpable process's environment read by a process of its user:\n%s", out)
		}
		if !protect && !leaked {
			t.Fatalf("control: a dumpable process's environment not readable, the test shows nothing:\n%s", out)
		}
	}
}

// runChild runs this test as a child that reads itself through another
// process and prints what that process read.
func runChild(t *testing.T, protect bool) string {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// Readable and executable by nobody: t.TempDir's parent is not.
	dir, err := os.MkdirTemp("", "undumpable")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	bin := filepath.Join(dir, "child.test")
	in, err := os.Open(self)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(bin, os.O_CREATE|os.O_WRONLY, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	out.Close()
	if err := os.Chmod(dir, 0o755); err != nil { // MkdirTemp makes it 0700
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-test.run=^TestUndumpable$")
	cmd.Env = []string{"UNDUMPABLE_CHILD=1", "SECRET_MARK=s3cr3t", "PROTECT=" + strconv.FormatBool(protect), "PATH=/usr/bin:/bin"}
	if os.Getuid() == 0 {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	}
	b, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, b)
	}
	return string(b)
}

func undumpableChild() {
	if os.Getenv("PROTECT") == "true" {
		if err := Undumpable(); err != nil {
			panic(err)
		}
	}
	// A process of the same user, as a command spider is.
	b, _ := exec.Command("cat", "/proc/"+strconv.Itoa(os.Getpid())+"/environ").CombinedOutput()
	os.Stdout.Write(b)
}
