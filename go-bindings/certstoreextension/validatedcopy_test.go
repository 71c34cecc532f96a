// Copyright The certstore Authors
// SPDX-License-Identifier: Apache-2.0

package certstoreextension

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/config/configtls"
)

func copyState(t *testing.T, dir string) (serial *big.Int, dataTarget string) {
	t.Helper()
	pair, err := tls.LoadX509KeyPair(filepath.Join(dir, copyCert), filepath.Join(dir, copyKey))
	require.NoError(t, err, "the copy holds a matching pair")
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	require.NoError(t, err)
	target, err := os.Readlink(filepath.Join(dir, copyData))
	require.NoError(t, err)
	return leaf.SerialNumber, target
}

func pemSubjects(t *testing.T, data []byte) []string {
	t.Helper()
	var out []string
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			return out
		}
		c, err := x509.ParseCertificate(b.Bytes)
		require.NoError(t, err)
		out = append(out, c.Subject.CommonName)
	}
}

func TestValidatedCopy(t *testing.T) {
	ca1, ca2 := newTestCA(t, "copy CA 1"), newTestCA(t, "copy CA 2")
	c1, k1, s1 := ca1.issue(t, "server-1", 24*time.Hour)
	src := newCertDir(t, c1, k1, ca1.pem)
	dir := filepath.Join(t.TempDir(), "validated")
	require.NoError(t, os.MkdirAll(dir, 0o755)) // an existing directory is made private
	cfg := config(src, true)
	cfg.TLS.CAOverlap = time.Hour
	cfg.Copy.ValidatedDir = dir
	ext := startExtension(t, "copy", cfg, newStatusHost(), nil)

	// Layout: private directory, key 0600, visible names are symlinks through ..data.
	st, err := os.Stat(dir)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o700), st.Mode().Perm())
	for _, name := range []string{copyCert, copyKey, copyCA} {
		link, err := os.Readlink(filepath.Join(dir, name))
		require.NoError(t, err, name)
		assert.Equal(t, filepath.Join(copyData, name), link)
	}
	kst, err := os.Stat(filepath.Join(dir, copyKey))
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), kst.Mode().Perm())
	serial, gen1 := copyState(t, dir)
	assert.Equal(t, 0, serial.Cmp(s1))
	caPEM, err := os.ReadFile(filepath.Join(dir, copyCA))
	require.NoError(t, err)
	assert.Equal(t, []string{"copy CA 1"}, pemSubjects(t, caPEM))
	key, err := os.ReadFile(filepath.Join(dir, copyKey))
	require.NoError(t, err)
	assert.True(t, bytes.HasPrefix(key, []byte("-----BEGIN PRIVATE KEY-----")))

	// A refused generation (mismatched key) never reaches the copy.
	c2, _, _ := ca1.issue(t, "server-2", 24*time.Hour)
	_, kOther, _ := ca1.issue(t, "other", 24*time.Hour)
	src.write(t, c2, kOther, ca1.pem)
	require.Error(t, ext.store.Reload())
	ext.check()
	serial, gen := copyState(t, dir)
	assert.Equal(t, 0, serial.Cmp(s1), "the copy keeps the last validated generation")
	assert.Equal(t, gen1, gen, "..data was not swapped")

	// A good rotation with a new CA bundle: new pair, and ca.crt is the overlap bundle.
	c3, k3, s3 := ca2.issue(t, "server-3", 24*time.Hour)
	src.write(t, c3, k3, ca2.pem)
	waitFor(t, "the copy of the new generation", func() bool {
		s, _ := copyState(t, dir)
		return s.Cmp(s3) == 0
	})
	// The swap is visible before the writer removed the previous directory: wait for the
	// write to finish (it runs under the extension's lock).
	ext.mu.Lock()
	ext.mu.Unlock() //nolint:staticcheck // an empty critical section: a barrier
	caPEM, err = os.ReadFile(filepath.Join(dir, copyCA))
	require.NoError(t, err)
	assert.Equal(t, []string{"copy CA 2", "copy CA 1"}, pemSubjects(t, caPEM), "[new, previous] during ca_overlap")
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	var genDirs []string
	for _, e := range entries {
		if e.IsDir() && strings.HasPrefix(e.Name(), "..") {
			genDirs = append(genDirs, e.Name())
		}
	}
	assert.Len(t, genDirs, 1, "the previous generation's directory is removed: %v", genDirs)
}

// What a confighttp server does with the copy: configtls with reload_interval re-reads it.
func TestValidatedCopyReadByConfigtls(t *testing.T) {
	ca := newTestCA(t, "configtls CA")
	c1, k1, s1 := ca.issue(t, "server-1", 24*time.Hour)
	src := newCertDir(t, c1, k1, nil)
	dir := filepath.Join(t.TempDir(), "validated")
	cfg := config(src, false)
	cfg.Copy.ValidatedDir = dir
	startExtension(t, "copy", cfg, newStatusHost(), nil)

	sc := configtls.NewDefaultServerConfig()
	sc.CertFile = filepath.Join(dir, copyCert)
	sc.KeyFile = filepath.Join(dir, copyKey)
	sc.ReloadInterval = 50 * time.Millisecond
	srvCfg, err := sc.LoadTLSConfig(context.Background())
	require.NoError(t, err)
	addr := tlsServer(t, srvCfg)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca.pem)
	served := func() *big.Int {
		conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: pool, ServerName: "localhost"})
		if err != nil {
			return nil
		}
		defer conn.Close()
		return conn.ConnectionState().PeerCertificates[0].SerialNumber
	}
	require.Equal(t, 0, served().Cmp(s1))

	// Garbage at the source: the copy, and so configtls, keep the last good certificate.
	src.write(t, []byte("not a certificate"), k1, nil)
	time.Sleep(200 * time.Millisecond) // several configtls reload intervals
	for range 5 {
		s := served()
		require.NotNil(t, s, "configtls must not fail handshakes")
		assert.Equal(t, 0, s.Cmp(s1))
	}
	c2, k2, s2 := ca.issue(t, "server-2", 24*time.Hour)
	src.write(t, c2, k2, nil)
	waitFor(t, "configtls serves the rotated copy", func() bool {
		s := served()
		return s != nil && s.Cmp(s2) == 0
	})
}
