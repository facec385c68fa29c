package natsconn_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/crawlmesh/crawlmesh/pkg/natsconn"
	"github.com/crawlmesh/crawlmesh/pkg/natstest"
)

// pki is a throwaway CA with a server and a client certificate, as files.
type pki struct {
	ca, serverCert, serverKey, clientCert, clientKey string
	pool                                             *x509.CertPool
}

func newPKI(t *testing.T) pki {
	t.Helper()
	dir := t.TempDir()
	now := time.Now()
	key := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	write := func(name, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	caKey := key()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	leaf := func(name string, serial int64, usage x509.ExtKeyUsage) (string, string) {
		k := key()
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
			NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature,
			ExtKeyUsage: []x509.ExtKeyUsage{usage}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &k.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		kd, err := x509.MarshalECPrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		return write(name+".pem", "CERTIFICATE", der), write(name+"-key.pem", "EC PRIVATE KEY", kd)
	}
	p := pki{ca: write("ca.pem", "CERTIFICATE", caDER), pool: x509.NewCertPool()}
	p.pool.AddCert(caCert)
	p.serverCert, p.serverKey = leaf("server", 2, x509.ExtKeyUsageServerAuth)
	p.clientCert, p.clientKey = leaf("client", 3, x509.ExtKeyUsageClientAuth)
	return p
}

// mtlsServer requires TLS with a client certificate from p's CA and the
// password of user crawler.
func mtlsServer(t *testing.T, p pki, password string) string {
	t.Helper()
	cert, err := tls.LoadX509KeyPair(p.serverCert, p.serverKey)
	if err != nil {
		t.Fatal(err)
	}
	tc := &tls.Config{Certificates: []tls.Certificate{cert}, ClientCAs: p.pool,
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
	p := newPKI(t)
	const password = "Sekr3tPassw0rdNotInErrors"
	url := mtlsServer(t, p, password)
	good := natsconn.Config{URL: url, User: "crawler", Password: password, TLSCA: p.ca,
		TLSCert: p.clientCert, TLSKey: p.clientKey, Timeout: 5 * time.Second}

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

	otherCA := newPKI(t)
	tests := []struct {
		name string
		mod  func(*natsconn.Config)
		want string // in the error
	}{
		{"wrong password", func(c *natsconn.Config) { c.Password = password + "x" }, "--user/--password"},
		{"no client certificate", func(c *natsconn.Config) { c.TLSCert, c.TLSKey = "", "" }, "--tls-cert and --tls-key signed by its CA"},
		{"client cert from another CA", func(c *natsconn.Config) { c.TLSCert, c.TLSKey = otherCA.clientCert, otherCA.clientKey },
			"--tls-cert and --tls-key signed by its CA"},
		{"server cert from another CA", func(c *natsconn.Config) { c.TLSCA = otherCA.ca }, "--tls-ca"},
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
