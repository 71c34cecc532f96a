// Copyright The certstore Authors
// SPDX-License-Identifier: Apache-2.0

package certstoreextension

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/config/configtls"
	"go.opentelemetry.io/collector/extension/extensiontest"
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
	dir := filepath.Join(t.TempDir(), "validated") // created by the extension
	cfg := config(src, true)
	cfg.TLS.CAOverlap = time.Hour
	cfg.Copy.ValidatedDir = dir
	ext := startExtension(t, "copy", cfg, newStatusHost(), nil)

	// Layout: private directories, key 0600, visible names are symlinks through ..data.
	st, err := os.Stat(dir)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o700), st.Mode().Perm())
	st, err = os.Stat(filepath.Join(dir, copyData))
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o700), st.Mode().Perm(), "a generation directory")
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

// dirState is everything observable of a directory's top level: names, modes, link targets and
// file contents.
func dirState(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	st, err := os.Lstat(dir)
	require.NoError(t, err)
	out["."] = st.Mode().String()
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	for _, e := range entries {
		p := filepath.Join(dir, e.Name())
		info, err := os.Lstat(p)
		require.NoError(t, err)
		v := info.Mode().String()
		switch {
		case info.Mode()&os.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			v += " -> " + target
		case info.Mode().IsRegular():
			data, _ := os.ReadFile(p)
			v += " " + string(data)
		}
		out[e.Name()] = v
	}
	return out
}

func generationDirs(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	var out []string
	for _, e := range entries {
		if e.IsDir() && strings.HasPrefix(e.Name(), "..") {
			out = append(out, e.Name())
		}
	}
	return out
}

func startCopyExtension(t *testing.T, name string, cfg *Config) (*certstoreExtension, error) {
	t.Helper()
	set := extensiontest.NewNopSettings(Type)
	set.ID = component.MustNewIDWithName("certstore", name)
	ext, err := NewFactory().Create(context.Background(), set, cfg)
	require.NoError(t, err)
	err = ext.Start(context.Background(), newStatusHost())
	t.Cleanup(func() { require.NoError(t, ext.Shutdown(context.Background())) })
	return ext.(*certstoreExtension), err
}

// Issue 15 defect 4: a directory certstore did not create and that is not empty is refused and
// left exactly as it was (no chmod, no file replaced by a link).
func TestValidatedCopyRefusesForeignDirectory(t *testing.T) {
	ca := newTestCA(t, "foreign CA")
	c1, k1, _ := ca.issue(t, "server", 24*time.Hour)
	src := newCertDir(t, c1, k1, nil)
	dir := filepath.Join(t.TempDir(), "run")
	require.NoError(t, os.Mkdir(dir, 0o755))
	require.NoError(t, os.Chmod(dir, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, copyCert), []byte("the user's own certificate"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "app.pid"), []byte("1234"), 0o644))
	before := dirState(t, dir)

	cfg := config(src, false)
	cfg.Copy.ValidatedDir = dir
	_, err := startCopyExtension(t, "foreign", cfg)
	require.Error(t, err)
	assert.Contains(t, err.Error(), dir)
	assert.Contains(t, err.Error(), "certstore did not write")
	assert.Equal(t, before, dirState(t, dir), "the directory is left exactly as it was")
}

// Issue 15 defect 5: an emptyDir mount point (an existing empty directory, mode 0777, which a
// non-root collector cannot chmod) is used as it is; the key stays private in its generation
// directory.
func TestValidatedCopyAdoptsEmptyMountPoint(t *testing.T) {
	ca := newTestCA(t, "emptyDir CA")
	c1, k1, s1 := ca.issue(t, "server", 24*time.Hour)
	src := newCertDir(t, c1, k1, nil)
	dir := filepath.Join(t.TempDir(), "validated")
	require.NoError(t, os.Mkdir(dir, 0o777))
	require.NoError(t, os.Chmod(dir, 0o777)) // exactly 0777 whatever the umask

	cfg := config(src, false)
	cfg.Copy.ValidatedDir = dir
	_, err := startCopyExtension(t, "emptydir", cfg)
	require.NoError(t, err)
	st, err := os.Stat(dir)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o777), st.Mode().Perm(), "the mount point's mode is not changed")
	serial, gen := copyState(t, dir)
	assert.Equal(t, 0, serial.Cmp(s1))
	gst, err := os.Stat(filepath.Join(dir, gen))
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o700), gst.Mode().Perm(), "the key's directory is private")
}

// Issue 15 defect 2: one owner per directory. A second instance is refused at start with an
// error naming the directory and the owner; once the owner shut down, the directory is free.
func TestValidatedCopyOneOwner(t *testing.T) {
	ca := newTestCA(t, "owner CA")
	c1, k1, _ := ca.issue(t, "server", 24*time.Hour)
	src := newCertDir(t, c1, k1, nil)
	dir := filepath.Join(t.TempDir(), "validated")
	cfg := config(src, false)
	cfg.Copy.ValidatedDir = dir

	first, err := startCopyExtension(t, "first", cfg)
	require.NoError(t, err)
	_, err = startCopyExtension(t, "second", cfg)
	require.Error(t, err, "two writers in one directory delete each other's generations")
	assert.Contains(t, err.Error(), "validated_dir "+dir+" is in use by certstore/first")

	require.NoError(t, first.Shutdown(context.Background()))
	_, err = startCopyExtension(t, "third", cfg)
	require.NoError(t, err, "a directory is free again after its owner's shutdown")
}

// Issue 15 defect 3: generation directories "..data" does not name (left by a crash before the
// swap, or by another writer) are swept at start and after each write.
func TestValidatedCopySweepsStaleGenerations(t *testing.T) {
	ca := newTestCA(t, "sweep CA")
	c1, k1, _ := ca.issue(t, "server-1", 24*time.Hour)
	src := newCertDir(t, c1, k1, nil)
	dir := filepath.Join(t.TempDir(), "validated")
	cfg := config(src, false)
	cfg.Copy.ValidatedDir = dir
	plant := func(name string) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.MkdirAll(p, 0o700))
		require.NoError(t, os.WriteFile(filepath.Join(p, copyKey), k1, 0o600))
		return p
	}

	ext, err := startCopyExtension(t, "sweep", cfg)
	require.NoError(t, err)
	require.NoError(t, ext.Shutdown(context.Background()))
	atStart := plant("..2020_01_01_00_00_00.111")
	ext, err = startCopyExtension(t, "sweep", cfg)
	require.NoError(t, err)
	assert.NoDirExists(t, atStart, "swept at start")

	crashed := plant("..2020_01_01_00_00_00.222")
	c2, k2, s2 := ca.issue(t, "server-2", 24*time.Hour)
	src.write(t, c2, k2, nil)
	waitFor(t, "the copy of the new generation", func() bool {
		s, _ := copyState(t, dir)
		return s.Cmp(s2) == 0
	})
	ext.mu.Lock()
	ext.mu.Unlock() //nolint:staticcheck // a barrier: the write (and its sweep) runs under the lock
	assert.NoDirExists(t, crashed, "swept after the rotation")
	_, gen := copyState(t, dir)
	assert.Equal(t, []string{gen}, generationDirs(t, dir), "only the generation ..data names is left")
}

// Issue 15 defect 2, two collectors on one volume: another process holding the directory makes
// Start refuse it too. The other process is this test binary, running
// TestHelperHoldValidatedDir.
func TestValidatedCopyOwnedByAnotherProcess(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "validated")
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperHoldValidatedDir$")
	cmd.Env = append(os.Environ(), "CERTSTORE_HOLD_DIR="+dir)
	stdin, err := cmd.StdinPipe()
	require.NoError(t, err)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = stdin.Close(); _ = cmd.Wait() })
	line, err := bufio.NewReader(stdout).ReadString('\n')
	require.NoError(t, err)
	require.Equal(t, "holding\n", line)

	ca := newTestCA(t, "other process CA")
	c1, k1, _ := ca.issue(t, "server", 24*time.Hour)
	cfg := config(newCertDir(t, c1, k1, nil), false)
	cfg.Copy.ValidatedDir = dir
	_, err = startCopyExtension(t, "second-collector", cfg)
	require.ErrorContains(t, err, "validated_dir "+dir+" is in use by another certstore (another collector sharing the volume?)")

	require.NoError(t, stdin.Close())
	require.NoError(t, cmd.Wait())
	_, err = startCopyExtension(t, "after", cfg)
	require.NoError(t, err, "free once the other process is gone")
}

// TestHelperHoldValidatedDir is the other collector of TestValidatedCopyOwnedByAnotherProcess:
// it owns CERTSTORE_HOLD_DIR until its stdin closes.
func TestHelperHoldValidatedDir(t *testing.T) {
	dir := os.Getenv("CERTSTORE_HOLD_DIR")
	if dir == "" {
		t.Skip("run by TestValidatedCopyOwnedByAnotherProcess")
	}
	w, err := newCopyWriter(dir, "certstore/first-collector")
	require.NoError(t, err)
	defer w.close()
	fmt.Println("holding")
	_, _ = io.Copy(io.Discard, os.Stdin)
}
