package certstore

import (
	"bytes"
	"runtime"
	"testing"
)

// dispatchers counts the goroutines delivering events of some Store.
func dispatchers() int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			return bytes.Count(buf[:n], []byte("certstore.(*Store).dispatch("))
		}
		buf = make([]byte, 2*len(buf))
	}
}

// Issue 15 (conventions): Close waits for the event goroutine Open started; nothing of the
// Store runs after Close returned.
func TestCloseWaitsForItsGoroutine(t *testing.T) {
	ca := newCA(t, "close-ca")
	w := newAtomicWriter(t)
	w.writeLeaf(ca.issue(t, kECDSA, "close"), nil)
	before := dispatchers()
	for range 20 {
		s := openT(t, w.options(false))
		subscribe(t, s)
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if n := dispatchers(); n != before {
			t.Fatalf("%d event goroutines after Close returned, %d before Open", n, before)
		}
	}
}
