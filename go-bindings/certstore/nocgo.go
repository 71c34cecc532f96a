//go:build !cgo

package certstore

// Stand-ins for capi.go when cgo is off. cOpen fails with ErrCgoRequired, so no Store exists
// and the other functions are never reached; they only keep the package compiling.

// storeHandle replaces cgo.Handle: runtime/cgo cannot be linked without cgo.
type storeHandle struct{}

func newStoreHandle(*Store) storeHandle { return storeHandle{} }

func (storeHandle) Delete() {}

type cStoreHandle struct{}

type cStore struct{ p *cStoreHandle }

func cOpen(Options) (*cStore, error) { return nil, ErrCgoRequired }

func cSubscribe(*cStore, storeHandle) (uint64, error) { return 0, ErrCgoRequired }

func cUnsubscribe(*cStoreHandle, uint64) error { return ErrCgoRequired }

func cFree(*cStoreHandle) error { return ErrCgoRequired }

type generationCounter struct{}

func cGenerationCounter(*cStore) generationCounter { return generationCounter{} }

func (generationCounter) load() uint64 { return 0 }

func (generationCounter) release() {}

func cGeneration(*cStoreHandle) uint64 { return 0 }

func cReload(*cStoreHandle) error { return ErrCgoRequired }

func cStatus(*cStoreHandle) (Status, error) { return Status{}, ErrCgoRequired }

func cCurrent(*cStoreHandle, uint64) (*rawSnapshot, error) { return nil, ErrCgoRequired }

// Version returns the version of the linked library: none without cgo.
func Version() string { return "" }
