// Copyright The certstore Authors
// SPDX-License-Identifier: Apache-2.0

package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"
)

// ca is a throw-away certificate authority.
type ca struct {
	name string
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

// leaf is an issued certificate with its key.
type leaf struct {
	certPEM, keyPEM []byte
	serial          *big.Int
}

var serials atomic.Int64

func init() { serials.Store(time.Now().Unix() << 16) }

func newCA(name string) *ca {
	key := must(ecdsa.GenerateKey(elliptic.P256(), rand.Reader))
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(serials.Add(1)),
		Subject:               pkix.Name{CommonName: name, Organization: []string{"certstore e2e"}},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(48 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der := must(x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key))
	return &ca{name: name, cert: must(x509.ParseCertificate(der)), key: key,
		pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// issue returns a leaf for localhost / 127.0.0.1 usable as server and client certificate.
func (c *ca) issue(cn string) leaf {
	key := must(ecdsa.GenerateKey(elliptic.P256(), rand.Reader))
	serial := big.NewInt(serials.Add(1))
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Minute),
		NotAfter:     time.Now().Add(24 * time.Hour),
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der := must(x509.CreateCertificate(rand.Reader, tmpl, c.cert, &key.PublicKey, c.key))
	kder := must(x509.MarshalPKCS8PrivateKey(key))
	return leaf{
		certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		keyPEM:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}),
		serial:  serial,
	}
}

func (l leaf) tlsCert() tls.Certificate { return must(tls.X509KeyPair(l.certPEM, l.keyPEM)) }

func pool(cas ...*ca) *x509.CertPool {
	p := x509.NewCertPool()
	for _, c := range cas {
		p.AddCert(c.cert)
	}
	return p
}

func bundle(cas ...*ca) []byte {
	var b []byte
	for _, c := range cas {
		b = append(b, c.pem...)
	}
	return b
}

// kubeletWrite updates dir the way the kubelet's atomic writer updates a Secret volume: the
// files go into a new ..<timestamp> directory, ..data_tmp points at it and is renamed over
// ..data, the visible names are symlinks to ..data/<name>, and the old directory is removed.
func kubeletWrite(dir string, files map[string][]byte) error {
	ts := "..certstore_e2e_" + time.Now().UTC().Format("2006_01_02_15_04_05.000000000")
	newDir := filepath.Join(dir, ts)
	if err := os.Mkdir(newDir, 0o755); err != nil {
		return err
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(newDir, name), data, 0o600); err != nil {
			return err
		}
	}
	dataLink := filepath.Join(dir, "..data")
	old, _ := os.Readlink(dataLink)
	tmpLink := filepath.Join(dir, "..data_tmp")
	_ = os.Remove(tmpLink)
	if err := os.Symlink(ts, tmpLink); err != nil {
		return err
	}
	if err := os.Rename(tmpLink, dataLink); err != nil {
		return err
	}
	for name := range files {
		visible := filepath.Join(dir, name)
		if _, err := os.Lstat(visible); os.IsNotExist(err) {
			if err := os.Symlink(filepath.Join("..data", name), visible); err != nil {
				return err
			}
		}
	}
	if old != "" && old != ts {
		return os.RemoveAll(filepath.Join(dir, old))
	}
	return nil
}

func writeFile(path string, data []byte) {
	if err := os.WriteFile(path, data, 0o600); err != nil {
		panic(fmt.Sprintf("write %s: %v", path, err))
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
