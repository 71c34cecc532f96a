// Copyright The certstore Authors
// SPDX-License-Identifier: Apache-2.0

package certstoreextension // import "github.com/certstore-dev/certstore/go-bindings/certstoreextension"

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Names in the validated directory: what cert-manager's Secrets hold, so a tls: block reads
// the same names whether it points at the Secret volume or at the copy.
const (
	copyCert = "tls.crt"
	copyKey  = "tls.key"
	copyCA   = "ca.crt"
	copyData = "..data"
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

// copyMarker marks a directory certstore owns: it created the directory, or adopted it empty
// (an emptyDir mount point). A directory holding anything else without it is refused, so a
// typo in validated_dir never takes over a directory of someone else. It is also the file the
// owner holds its exclusive lock on.
const copyMarker = "..certstore"

// copyWriter writes validated generations into a directory with the kubelet's atomic
// layout: the files of a generation go into a new hidden directory (0700), "..data" is
// swapped to it by a rename, and tls.crt, tls.key and ca.crt are symlinks through "..data". A
// reader that opens tls.crt always gets a complete file of one generation; the key is 0600
// inside a 0700 directory, whatever the mode of validated_dir itself (an emptyDir mount point
// is 0777 and not ours to chmod).
//
// One writer owns a directory: it holds an exclusive flock on the marker from newCopyWriter to
// close. Two instances, or two collectors on one volume, writing one directory would delete
// each other's generations.
type copyWriter struct {
	dir  string
	lock *os.File
	last *generationFiles
}

// copyOwners names the instance of this process holding each validated_dir, so a second
// instance is told which one; the flock alone refuses an owner in another process.
var copyOwners sync.Map // clean dir -> owner (component ID)

func newCopyWriter(dir, owner string) (*copyWriter, error) {
	dir = filepath.Clean(dir)
	if err := prepareCopyDir(dir); err != nil {
		return nil, fmt.Errorf("validated_dir %s: %w", dir, err)
	}
	lock, err := os.OpenFile(filepath.Join(dir, copyMarker), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("validated_dir %s: %w", dir, err)
	}
	// flock locks belong to an open file description: a second open in this process conflicts
	// as one in another process does.
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		_ = lock.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			by := "another certstore (another collector sharing the volume?)"
			if o, ok := copyOwners.Load(dir); ok {
				by = o.(string) + " in this collector"
			}
			return nil, fmt.Errorf("validated_dir %s is in use by %s: give every certstore instance its own directory", dir, by)
		}
		return nil, fmt.Errorf("validated_dir %s: locking %s: %w", dir, copyMarker, err)
	}
	copyOwners.Store(dir, owner)
	w := &copyWriter{dir: dir, lock: lock}
	w.sweep()
	return w, nil
}

// prepareCopyDir creates dir (0700), or accepts it when it is a directory certstore owns or an
// empty one, which it marks. It never changes the mode of an existing directory.
func prepareCopyDir(dir string) error {
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return err
	}
	if err := os.Mkdir(dir, 0o700); err == nil {
		return nil
	} else if !errors.Is(err, os.ErrExist) {
		return err
	}
	st, err := os.Stat(dir)
	if err != nil {
		return err
	}
	if !st.IsDir() {
		return errors.New("exists and is not a directory")
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	var foreign []string
	for _, e := range entries {
		if e.Name() == copyMarker {
			return nil
		}
		foreign = append(foreign, e.Name())
	}
	if len(foreign) > 0 {
		if len(foreign) > 3 {
			foreign = append(foreign[:3], "...")
		}
		return fmt.Errorf("exists and holds files certstore did not write (%s): use an empty directory or a new path; "+
			"certstore never writes into a directory it does not own", strings.Join(foreign, ", "))
	}
	return nil
}

// close releases the directory; its files stay for the readers.
func (w *copyWriter) close() {
	if w.lock == nil {
		return
	}
	copyOwners.Delete(w.dir)
	_ = w.lock.Close() // releases the flock
	w.lock = nil
	if w.last != nil {
		w.last.wipe()
	}
}

// write publishes g unless it is what the directory already holds. It reports whether it wrote.
func (w *copyWriter) write(g *generationFiles) (bool, error) {
	if g.equal(w.last) {
		return false, nil
	}
	err := w.swap(g)
	w.sweep()
	if err != nil {
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
			return err
		}
	}
	if err := syncDir(gen); err != nil {
		return err
	}
	if err := replaceWithLink(w.dir, copyData, filepath.Base(gen)); err != nil {
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
	return syncDir(w.dir)
}

// sweep removes every generation directory "..data" does not name and every temporary link:
// a crash between writing a generation and the swap, or an error after it, must not leave a
// private key behind. Only names starting with ".." are touched (the kubelet's layout); the
// visible links and the marker stay.
func (w *copyWriter) sweep() {
	current, _ := os.Readlink(filepath.Join(w.dir, copyData))
	entries, err := os.ReadDir(w.dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		name := e.Name()
		if !strings.HasPrefix(name, "..") || name == copyData || name == copyMarker || name == current {
			continue
		}
		_ = os.RemoveAll(filepath.Join(w.dir, name))
	}
}

// ensureLink makes dir/name the symlink ..data/name, replacing anything else atomically.
func ensureLink(dir, name string) error {
	target := filepath.Join(copyData, name)
	if cur, err := os.Readlink(filepath.Join(dir, name)); err == nil && cur == target {
		return nil
	}
	return replaceWithLink(dir, name, target)
}

// replaceWithLink makes dir/name a symlink to target by renaming a new link over it. The
// temporary link has a unique name starting with ".." (swept if left behind).
func replaceWithLink(dir, name, target string) error {
	tmp := filepath.Join(dir, fmt.Sprintf("..tmp.%s.%016x", strings.TrimLeft(name, "."), rand.Uint64()))
	if err := os.Symlink(target, tmp); err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		_ = os.Remove(tmp)
		return err
	}
	return nil
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
