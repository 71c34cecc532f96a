package certstore

import "time"

// rawSnapshot is what Go copies out of a certstore_snapshot, once per generation. It holds no
// pointer into Rust memory.
type rawSnapshot struct {
	generation          uint64
	certPEM, keyPEM     []byte
	caPEM               []byte // nil when the store has no CA file
	notBefore, notAfter time.Time
	serial              string
	fingerprint         [32]byte
	caNotAfter          []time.Time // per CA of caPEM, in order, from the library
}
