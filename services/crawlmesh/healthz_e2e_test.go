package main

import (
	"io"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// getHealthz GETs addr's /healthz and returns the status code and body.
func getHealthz(addr string) (int, string) {
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get("http://" + addr + "/healthz")
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	return resp.StatusCode, string(b)
}

// TestHealthzReflectsNATS: a worker's and a master's /healthz (the probes
// of deploy/k8s and the compose healthchecks) answer 200 while they are
// connected and heartbeating, and 503 saying why once NATS is gone.
func TestHealthzReflectsNATS(t *testing.T) {
	m := startMesh(t, 0)
	waddr := "127.0.0.1:" + strconv.Itoa(freePort(t))
	maddr := "127.0.0.1:" + strconv.Itoa(freePort(t))
	start(t, "worker", "--nats", m.url, "--id", "hw", "--http", waddr)
	start(t, "master", "--nats", m.url, "--id", "hm", "--http", maddr)
	for _, a := range []string{waddr, maddr} {
		waitFor(t, 20*time.Second, a+"/healthz 200", func() bool {
			code, body := getHealthz(a)
			return code == http.StatusOK && body == "ok\n"
		})
	}
	m.ns.Signal(syscall.SIGKILL)
	exitCode(t, m.ns, 5*time.Second)
	for _, a := range []string{waddr, maddr} {
		var body string
		waitFor(t, 10*time.Second, a+"/healthz 503 without NATS", func() bool {
			var code int
			code, body = getHealthz(a)
			return code == http.StatusServiceUnavailable
		})
		if !strings.Contains(body, "NATS") {
			t.Errorf("%s/healthz says %q; want the reason (NATS)", a, body)
		}
	}
}
