//go:build cgo && !certstore_static

package certstore

// The library is found through pkg-config, as any installed C library (`make install`, or
// PKG_CONFIG_PATH=build/pkgconfig in a clone): no path outside this module, so the module
// builds from its module zip. By default the program links libcertstore.so.1; with the build
// tag certstore_static it links libcertstore.a instead (link_static.go). One file per mode,
// not a build constraint on a #cgo line: the go command's build cache tells two files apart,
// but not two outcomes of one file, and would hand out a package linked the other way.

// #cgo pkg-config: certstore
import "C"
