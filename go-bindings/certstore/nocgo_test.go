//go:build !cgo

package certstore

import (
	"errors"
	"strings"
	"testing"
)

// Built with CGO_ENABLED=0 (make test-go runs it so): Open must fail with an error that
// tells the user what to change, not leave them with a link error or a nil store.
func TestOpenWithoutCgoSaysHowToEnableIt(t *testing.T) {
	s, err := Open(Options{CertFile: "testdata/tls.crt", KeyFile: "testdata/tls.key"})
	if s != nil || !errors.Is(err, ErrCgoRequired) {
		t.Fatalf("Open without cgo = %v, %v; want nil, ErrCgoRequired", s, err)
	}
	for _, want := range []string{"CGO_ENABLED=1", "dist.cgo_enabled: true", "pkg-config certstore"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}
