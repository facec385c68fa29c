package natsconn_test

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/crawlmesh/crawlmesh/pkg/natsconn"
	"github.com/crawlmesh/crawlmesh/pkg/natstest"
)

// mtlsServer requires TLS with a client certificate from p's CA and the
// password of user crawler.
func mtlsServer(t *testing.T, p natstest.PKI, password string) string {
	t.Helper()
	cert, err := tls.LoadX509KeyPair(p.ServerCert, p.ServerKey)
	if err != nil {
		t.Fatal(err)
	}
	tc := &tls.Config{Certificates: []tls.Certificate{cert}, ClientCAs: p.Pool,
		ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS12}
	s := natstest.RunServerWith(t, &server.Options{JetStream: true, StoreDir: t.TempDir(),
		TLS: true, TLSVerify: true, TLSConfig: tc, TLSTimeout: 5,
		Users: []*server.User{{Username: "crawler", Password: password}}})
	return "tls://127.0.0.1:" + strconv.Itoa(s.Addr().(*net.TCPAddr).Port)
}

// TestDialTLSAndCredentials: --tls-ca, --tls-cert, --tls-key and
// --user/--password together reach a server that requires all of them;
// leaving one out, or a wrong password, fails with a sentence naming the
// flags to check, and the password never appears in the error.
func TestDialTLSAndCredentials(t *testing.T) {
	p := natstest.NewPKI(t, t.TempDir(), "client")
	const password = "Sekr3tPassw0rdNotInErrors"
	url := mtlsServer(t, p, password)
	good := natsconn.Config{URL: url, User: "crawler", Password: password, TLSCA: p.CA,
		TLSCert: p.Client["client"].Cert, TLSKey: p.Client["client"].Key, Timeout: 5 * time.Second}

	nc, js, err := natsconn.Dial(t.Context(), good, nil, natsconn.Hooks{})
	if err != nil {
		t.Fatalf("dial with every option right: %v", err)
	}
	if !nc.TLSRequired() {
		t.Errorf("connection is not TLS")
	}
	if _, err := js.AccountInfo(t.Context()); err != nil {
		t.Errorf("jetstream over mutual TLS: %v", err)
	}
	nc.Close()

	otherCA := natstest.NewPKI(t, t.TempDir(), "client")
	tests := []struct {
		name string
		mod  func(*natsconn.Config)
		want string // in the error
	}{
		{"wrong password", func(c *natsconn.Config) { c.Password = password + "x" }, "--user/--password"},
		{"no client certificate", func(c *natsconn.Config) { c.TLSCert, c.TLSKey = "", "" }, "--tls-cert and --tls-key signed by its CA"},
		{"client cert from another CA", func(c *natsconn.Config) {
			c.TLSCert, c.TLSKey = otherCA.Client["client"].Cert, otherCA.Client["client"].Key
		},
			"--tls-cert and --tls-key signed by its CA"},
		{"server cert from another CA", func(c *natsconn.Config) { c.TLSCA = otherCA.CA }, "--tls-ca"},
		{"cert without key", func(c *natsconn.Config) { c.TLSKey = "" }, "--tls-cert and --tls-key go together"},
		{"password in the URL", func(c *natsconn.Config) {
			c.URL = strings.Replace(url, "tls://", "tls://crawler:"+password+"x@", 1)
			c.User, c.Password = "", ""
		}, "refused our credentials"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := good
			tt.mod(&c)
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			nc, _, err := natsconn.Dial(ctx, c, nil, natsconn.Hooks{})
			if err == nil {
				nc.Close()
				t.Fatal("dial succeeded")
			}
			t.Logf("%v", err)
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not say %q", err, tt.want)
			}
			if strings.Contains(err.Error(), password) {
				t.Errorf("error shows the password: %q", err)
			}
		})
	}
}

func TestRedact(t *testing.T) {
	got := natsconn.Redact("nats://u:secret@a:4222, tls://tok3n@b:4222,nats://c:4222")
	if strings.Contains(got, "secret") || strings.Contains(got, "tok3n") {
		t.Errorf("Redact left a secret: %q", got)
	}
	if !strings.Contains(got, "a:4222") || !strings.Contains(got, "b:4222") || !strings.Contains(got, "nats://c:4222") {
		t.Errorf("Redact lost a server: %q", got)
	}
}

// TestDialNotNATS: --nats pointed at nats-server's monitoring port (HTTP,
// which waits for a request) or at a service that greets with something
// else says the port does not speak NATS and which one does, instead of
// a bare "read tcp …: i/o timeout" (found by review).
func TestDialNotNATS(t *testing.T) {
	s := natstest.RunServerWith(t, &server.Options{JetStream: true, StoreDir: t.TempDir(), HTTPHost: "127.0.0.1", HTTPPort: -1})
	monitor := s.MonitorAddr()
	if monitor == nil {
		t.Fatal("the server has no monitoring port")
	}
	banner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer banner.Close()
	go func() {
		for {
			c, err := banner.Accept()
			if err != nil {
				return
			}
			_, _ = c.Write([]byte("SSH-2.0-OpenSSH_9.6\r\n"))
			time.AfterFunc(5*time.Second, func() { c.Close() })
		}
	}()
	for name, addr := range map[string]string{"monitoring port": monitor.String(), "ssh-like banner": banner.Addr().String()} {
		t.Run(name, func(t *testing.T) {
			c := natsconn.Config{URL: "nats://" + addr, Timeout: time.Second}
			nc, _, err := natsconn.Dial(t.Context(), c, nil, natsconn.Hooks{})
			if err == nil {
				nc.Close()
				t.Fatal("dial succeeded")
			}
			t.Logf("%v", err)
			for _, want := range []string{"sent no NATS greeting", "NATS client port (4222 by default)", addr} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not say %q", err, want)
				}
			}
		})
	}
}

// TestPublishAckTimeout: an asynchronous publish whose ack never comes (a
// stream leader lost mid-publish; here a subscriber that swallows the
// message) fails after the timeout instead of waiting for good (found by
// review: workers' tasks hung on such futures, and drains never ended).
func TestPublishAckTimeout(t *testing.T) {
	s := natstest.RunServer(t)
	nc, js, err := natsconn.Dial(t.Context(), natsconn.Config{URL: s.ClientURL(), Timeout: 5 * time.Second, PublishAckTimeout: 200 * time.Millisecond}, nil, natsconn.Hooks{})
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	sub, err := nc.SubscribeSync("swallowed")
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	f, err := js.PublishAsync("swallowed", []byte("x"))
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-f.Ok():
		t.Fatal("acked by nobody")
	case err := <-f.Err():
		if !errors.Is(err, jetstream.ErrAsyncPublishTimeout) {
			t.Errorf("error %v, want the publish ack timeout", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the publish is still waiting for its ack after 10 s")
	}
}

// TestDialAnotherRolesUser: a user that may not receive answers on its
// inbox (the credentials of another role, whose inbox prefix differs) is
// told so, not that JetStream was slow to answer (found by review).
func TestDialAnotherRolesUser(t *testing.T) {
	s := natstest.RunServerWith(t, &server.Options{JetStream: true, StoreDir: t.TempDir(),
		Users: []*server.User{{Username: "worker", Password: "pw-not-in-errors", Permissions: &server.Permissions{
			Publish:   &server.SubjectPermission{Allow: []string{"$JS.API.>"}},
			Subscribe: &server.SubjectPermission{Allow: []string{"_INBOX_worker.>"}},
		}}}})
	url := "nats://127.0.0.1:" + strconv.Itoa(s.Addr().(*net.TCPAddr).Port)
	_, _, err := natsconn.Dial(t.Context(), natsconn.Config{URL: url, User: "worker", Password: "pw-not-in-errors", Timeout: 2 * time.Second}, nil, natsconn.Hooks{})
	if err == nil || !strings.Contains(err.Error(), "denies this user what it needs") || !strings.Contains(err.Error(), "_INBOX") {
		t.Fatalf("dial with a user that cannot receive on its inbox: %v; want the permission named", err)
	}
	if strings.Contains(err.Error(), "pw-not-in-errors") {
		t.Errorf("error shows the password: %v", err)
	}
}
