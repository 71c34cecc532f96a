// Copyright The certstore Authors
// SPDX-License-Identifier: Apache-2.0

package certstoreextension

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

// testCA is a throw-away CA for tests.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

var serialCounter int64 = 1000

func nextSerial() *big.Int {
	serialCounter++
	return big.NewInt(serialCounter)
}

func newTestCA(t testing.TB, name string) *testCA {
	t.Helper()
	return newTestCAOn(t, name, elliptic.P256())
}

// newTestCAOn is newTestCA with a CA key on curve (e.g. P-224, which FIPS 140-3 mode refuses).
func newTestCAOn(t testing.TB, name string, curve elliptic.Curve) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(curve, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          nextSerial(),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// issue returns a leaf (cert PEM, key PEM, serial) valid for localhost and 127.0.0.1.
func (ca *testCA) issue(t testing.TB, cn string, validFor time.Duration) (certPEM, keyPEM []byte, serial *big.Int) {
	t.Helper()
	return ca.issueBetween(t, cn, time.Now().Add(-time.Minute), time.Now().Add(validFor))
}

// issueBetween is issue with the validity window [notBefore, notAfter].
func (ca *testCA) issueBetween(t testing.TB, cn string, notBefore, notAfter time.Time) (certPEM, keyPEM []byte, serial *big.Int) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial = nextSerial()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    notBefore,
		NotAfter:     notAfter,
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), serial
}

// certDir is a directory with tls.crt, tls.key and ca.crt, replaced atomically (rename).
type certDir struct {
	dir string
}

func (d certDir) cert() string { return filepath.Join(d.dir, "tls.crt") }
func (d certDir) key() string  { return filepath.Join(d.dir, "tls.key") }
func (d certDir) ca() string   { return filepath.Join(d.dir, "ca.crt") }

func writeAtomic(t testing.TB, path string, data []byte) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// write replaces the files; the key first so that a reader sees cert+key consistent at the end.
func (d certDir) write(t testing.TB, certPEM, keyPEM, caPEM []byte) {
	t.Helper()
	writeAtomic(t, d.key(), keyPEM)
	if caPEM != nil {
		writeAtomic(t, d.ca(), caPEM)
	}
	writeAtomic(t, d.cert(), certPEM)
}

func newCertDir(t testing.TB, certPEM, keyPEM, caPEM []byte) certDir {
	t.Helper()
	d := certDir{dir: t.TempDir()}
	d.write(t, certPEM, keyPEM, caPEM)
	return d
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}
