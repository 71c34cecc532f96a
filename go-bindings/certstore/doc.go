// Package certstore gives Go servers and clients a *tls.Config that follows certificate
// rotations on disk without a restart.
//
// It wraps the C ABI of the Rust certstore library (found through pkg-config, see README.md). The
// library watches the certificate, key and optional CA bundle (inotify on the parent
// directories, so Kubernetes Secret volumes rotated by the kubelet's atomic writer are seen),
// validates every new generation (key matches the leaf, validity window, CA bundle) before it
// is served, and keeps the last good generation when new files are bad.
//
// Go learns of a new generation through a subscription callback: it copies the PEM once per
// generation, frees the library's snapshot at once, builds the tls.Certificate and CA pool,
// wipes its PEM buffers, and publishes the result with one atomic store. The handshake path
// (GetConfigForClient, GetClientCertificate) is one atomic load of that result plus one atomic
// load of the library's generation counter (shared memory): no cgo call, no file I/O, no
// allocation. Should the library be ahead (the callback has not run yet), that handshake
// installs the new generation itself, so correctness never depends on the callback. Every Go
// method that can observe a new generation (Current, Status, Reload) first brings Go's copy up
// to date, so a generation seen through the API is the one served.
//
//	store, err := certstore.Open(certstore.Options{
//		CertFile: "/certs/tls.crt", KeyFile: "/certs/tls.key", CAFile: "/certs/ca.crt",
//		CAOverlap: time.Hour,
//	})
//	if err != nil { ... }          // names the file and what is wrong with it
//	defer store.Close()
//	srv := &http.Server{TLSConfig: store.ServerTLSConfig(&tls.Config{
//		MinVersion: tls.VersionTLS12,
//		ClientAuth: tls.RequireAndVerifyClientCert, // client CAs come from CAFile
//	})}
//	store.Subscribe(func(ev certstore.Event) { log.Printf("certstore: %v gen %d %v", ev.Kind, ev.Generation, ev.Err) })
//
// For gRPC use GRPCServerTLSConfig (or put "h2" in base.NextProtos): the config returned by
// GetConfigForClient replaces the one grpc-go prepared, and grpc-go refuses connections
// without ALPN h2.
//
// Several certificates on one listener: ServerTLSConfigSNI picks the Store by the
// ClientHello's server name (crypto/x509's name matching, exact names before wildcards), with
// a default Store when nothing matches; names are given or taken from each leaf's SANs.
//
// CA rotation: when the CA bundle changes, the previous bundle stays trusted for
// Options.CAOverlap (server: client CAs; client: roots), then is dropped.
package certstore
