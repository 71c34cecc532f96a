package certstore

import "errors"

// ErrCgoRequired is what Open returns in a program built without cgo (CGO_ENABLED=0, the
// default of ocb and of cross-compiles): the package then compiles, so the user gets this
// message at start-up instead of "undefined: ..." from the compiler.
var ErrCgoRequired = errors.New("certstore: this program was built without cgo (CGO_ENABLED=0), " +
	"but certstore links the C library libcertstore through cgo: build with CGO_ENABLED=1, a C " +
	"compiler and libcertstore installed (pkg-config certstore); with ocb set " +
	"dist.cgo_enabled: true in builder-config.yaml")
