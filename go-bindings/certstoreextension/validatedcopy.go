// Copyright The certstore Authors
// SPDX-License-Identifier: Apache-2.0

package certstoreextension // import "github.com/certstore-dev/certstore/go-bindings/certstoreextension"

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Names in the validated directory: what cert-manager's Secrets hold, so a tls: block reads
// the same names whether it points at the Secret volume or at the copy.
const (
	copyCert    = "tls.crt"
	copyKey     = "tls.key"
	copyCA      = "ca.crt"
	copyData    = "..data"
	copyDataTmp = "..data_tmp"
)

// generationFiles is what one validated generation writes.
type generationFiles struct {
	cert, key, ca []byte // ca nil without ca_file
}

func (g *generationFiles) wipe() {
	clear(g.key)
}

func (g *generationFiles) equal(o *generationFiles) bool {
	return o != nil && bytes.Equal(g.cert, o.cert) && bytes.Equal(g.key, o.key) && bytes.Equal(g.ca, o.ca) &&
		(g.ca == nil) == (o.ca == nil)
}

// encodeGeneration turns a validated generation into PEM: the chain served, the key
// (PKCS #8) and the trusted CAs (the overlap bundle during a CA overlap).
func encodeGeneration(chain [][]byte, key any, cas []*x509.Certificate, withCA bool) (*generationFiles, error) {
	g := &generationFiles{}
	for _, der := range chain {
		g.cert = append(g.cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encoding the private key: %w", err)
	}
	g.key = pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	clear(der)
	if withCA {
		g.ca = []byte{}
		for _, c := range cas {
			g.ca = append(g.ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
		}
	}
	return g, nil
}

// copyWriter writes validated generations into a directory with the kubelet's atomic
// layout: the files of a generation go into a new hidden directory, "..data" is swapped to it
// by a rename, and tls.crt, tls.key and ca.crt are symlinks through "..data". A reader that
// opens tls.crt always gets a complete file of one generation; the directory is 0700 and the
// key 0600.
type copyWriter struct {
	dir  string
	last *generationFiles
}

func newCopyWriter(dir string) (*copyWriter, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("validated_dir %s: %w", dir, err)
	}
	// MkdirAll keeps the mode of an existing directory: the key must not be readable by others.
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, fmt.Errorf("validated_dir %s: %w", dir, err)
	}
	return &copyWriter{dir: dir}, nil
}

// write publishes g unless it is what the directory already holds. It reports whether it wrote.
func (w *copyWriter) write(g *generationFiles) (bool, error) {
	if g.equal(w.last) {
		return false, nil
	}
	if err := w.swap(g); err != nil {
		return false, fmt.Errorf("validated_dir %s: %w", w.dir, err)
	}
	if w.last != nil {
		w.last.wipe()
	}
	w.last = g
	return true, nil
}

func (w *copyWriter) swap(g *generationFiles) error {
	gen, err := os.MkdirTemp(w.dir, ".."+time.Now().UTC().Format("2006_01_02_15_04_05")+".")
	if err != nil {
		return err
	}
	files := []struct {
		name string
		data []byte
		mode os.FileMode
	}{{copyCert, g.cert, 0o644}, {copyKey, g.key, 0o600}}
	if g.ca != nil {
		files = append(files, struct {
			name string
			data []byte
			mode os.FileMode
		}{copyCA, g.ca, 0o644})
	}
	for _, f := range files {
		if err := writeSynced(filepath.Join(gen, f.name), f.data, f.mode); err != nil {
			_ = os.RemoveAll(gen)
			return err
		}
	}
	if err := syncDir(gen); err != nil {
		_ = os.RemoveAll(gen)
		return err
	}
	old, _ := os.Readlink(filepath.Join(w.dir, copyData))
	tmp := filepath.Join(w.dir, copyDataTmp)
	_ = os.Remove(tmp)
	if err := os.Symlink(filepath.Base(gen), tmp); err != nil {
		_ = os.RemoveAll(gen)
		return err
	}
	if err := os.Rename(tmp, filepath.Join(w.dir, copyData)); err != nil {
		_ = os.Remove(tmp)
		_ = os.RemoveAll(gen)
		return err
	}
	for _, f := range files {
		if err := ensureLink(w.dir, f.name); err != nil {
			return err
		}
	}
	if g.ca == nil {
		_ = os.Remove(filepath.Join(w.dir, copyCA))
	}
	if err := syncDir(w.dir); err != nil {
		return err
	}
	// Only a directory this writer made is removed: never follow "..data" out of w.dir.
	if old != "" && strings.HasPrefix(old, "..") && !strings.ContainsRune(old, os.PathSeparator) && old != filepath.Base(gen) {
		_ = os.RemoveAll(filepath.Join(w.dir, old))
	}
	return nil
}

// ensureLink makes dir/name the symlink ..data/name, replacing anything else atomically.
func ensureLink(dir, name string) error {
	path := filepath.Join(dir, name)
	target := filepath.Join(copyData, name)
	if cur, err := os.Readlink(path); err == nil && cur == target {
		return nil
	}
	tmp := path + ".tmp"
	_ = os.Remove(tmp)
	if err := os.Symlink(target, tmp); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func writeSynced(path string, data []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil && !errors.Is(cerr, os.ErrClosed) {
		err = cerr
	}
	return err
}
