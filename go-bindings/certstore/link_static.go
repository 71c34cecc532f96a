//go:build cgo && certstore_static

package certstore

// Built with -tags certstore_static: libcertstore.a is linked into the program, which then
// needs no libcertstore at run time (see link_shared.go). certstore-static.pc names the
// archive itself, as a plain -lcertstore would pick the .so installed beside it.

// #cgo pkg-config: certstore-static
import "C"
