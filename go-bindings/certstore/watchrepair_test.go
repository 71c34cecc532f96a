package certstore

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// An ancestor of the watched directory replaced (mv app app.old; mv app.new app) kills the
// directory's inotify watch without an event. The library's re-read audit finds the
// unannounced generation, rebuilds the watches and says so: through cgo that is an
// EventWatchRepaired naming the directory and Status.WatchRepairs, and the next rotation is
// served by inotify again (no second repair).
func TestWatchRepairedReachesGo(t *testing.T) {
	root := t.TempDir()
	app := filepath.Join(root, "app")
	ca := newCA(t, "repair CA")
	writerIn := func(dir string) *atomicWriter {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		return &atomicWriter{t: t, dir: dir}
	}
	w := writerIn(filepath.Join(app, "certs"))
	first := ca.issue(t, kECDSA, "first")
	w.writeLeaf(first, nil)

	opts := w.options(false)
	opts.ReloadInterval = time.Second
	s, err := Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	events := subscribe(t, s)
	// Let the start-up reload and its watch registration finish: a reload after the swap would
	// re-add the watch itself, with nothing for the audit to repair.
	if err := s.Reload(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)

	second := ca.issue(t, kECDSA, "second")
	writerIn(filepath.Join(root, "app.new", "certs")).writeLeaf(second, nil)
	if err := os.Rename(app, filepath.Join(root, "app.old")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(root, "app.new"), app); err != nil {
		t.Fatal(err)
	}

	ev := events.wait(t, EventWatchRepaired)
	if !strings.HasPrefix(ev.Path, app) {
		t.Errorf("repair names %q, want a directory under %s", ev.Path, app)
	}
	waitServing(t, s, events, second.cert)
	if got := s.Status().WatchRepairs; got != 1 {
		t.Fatalf("Status.WatchRepairs = %d after one repair, want 1", got)
	}

	// The rebuilt watch sees the next rotation: served, and no second repair.
	third := ca.issue(t, kECDSA, "third")
	(&atomicWriter{t: t, dir: filepath.Join(app, "certs"), n: 10}).writeLeaf(third, nil)
	waitServing(t, s, events, third.cert)
	if got := s.Status().WatchRepairs; got != 1 {
		t.Errorf("Status.WatchRepairs = %d after a rotation inotify announced, want still 1", got)
	}
}
