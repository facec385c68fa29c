package natstest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// PKI is a throwaway certificate authority with a server certificate for
// 127.0.0.1 and localhost and one client certificate per name, written as
// PEM files for servers and clients that take file names.
type PKI struct {
	CA, ServerCert, ServerKey string
	Client                    map[string]KeyPair // by name
	Pool                      *x509.CertPool     // holds the CA
}

// KeyPair names a certificate file and its key file.
type KeyPair struct{ Cert, Key string }

// NewPKI writes a CA, a server certificate and a client certificate for
// each of clients into dir (one day of validity, ECDSA P-256).
func NewPKI(t testing.TB, dir string, clients ...string) PKI {
	t.Helper()
	now := time.Now()
	newKey := func() *ecdsa.PrivateKey {
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
	caKey := newKey()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "crawlmesh test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	serial := int64(1)
	leaf := func(name string, usage x509.ExtKeyUsage) KeyPair {
		serial++
		k := newKey()
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
			NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage}}
		if usage == x509.ExtKeyUsageServerAuth {
			tmpl.DNSNames, tmpl.IPAddresses = []string{"localhost"}, []net.IP{net.IPv4(127, 0, 0, 1)}
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &k.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		kd, err := x509.MarshalECPrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		return KeyPair{write(name+".pem", "CERTIFICATE", der), write(name+"-key.pem", "EC PRIVATE KEY", kd)}
	}
	p := PKI{CA: write("ca.pem", "CERTIFICATE", caDER), Client: map[string]KeyPair{}, Pool: x509.NewCertPool()}
	p.Pool.AddCert(caCert)
	server := leaf("server", x509.ExtKeyUsageServerAuth)
	p.ServerCert, p.ServerKey = server.Cert, server.Key
	for _, c := range clients {
		p.Client[c] = leaf(c, x509.ExtKeyUsageClientAuth)
	}
	return p
}
