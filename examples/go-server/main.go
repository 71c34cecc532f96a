// Command go-server is an HTTPS server on loopback whose certificate follows rotations on
// disk with no restart. It prints every rotation (and every refused reload).
//
//	make build                                   # the Rust library (static)
//	cd examples/go-server && go build
//	./go-server -cert /certs/tls.crt -key /certs/tls.key [-ca /certs/ca.crt -client-auth]
//	curl --cacert ca.pem https://localhost:8443/
//
// SIGHUP reloads the files at once; SIGINT/SIGTERM stop the server.
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"log"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/certstore-dev/certstore/go-bindings/certstore"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8443", "listen address (loopback)")
	certFile := flag.String("cert", "tls.crt", "PEM certificate chain, leaf first")
	keyFile := flag.String("key", "tls.key", "PEM private key")
	caFile := flag.String("ca", "", "optional PEM CA bundle (client CAs)")
	clientAuth := flag.Bool("client-auth", false, "require and verify client certificates (needs -ca)")
	overlap := flag.Duration("ca-overlap", time.Hour, "keep trusting the previous CA bundle this long after a CA rotation")
	flag.Parse()

	store, err := certstore.Open(certstore.Options{
		CertFile: *certFile, KeyFile: *keyFile, CAFile: *caFile, CAOverlap: *overlap,
	})
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()

	snap, err := store.Current()
	if err != nil {
		log.Fatal(err)
	}
	log.Printf("certstore %s: serving generation %d serial %s (not after %s)",
		certstore.Version(), snap.Generation, snap.Serial, snap.NotAfter.Format(time.RFC3339))

	cancel := store.Subscribe(func(ev certstore.Event) {
		switch ev.Kind {
		case certstore.EventRotated:
			if s, err := store.Current(); err == nil {
				log.Printf("rotated: generation %d serial %s (not after %s)", s.Generation, s.Serial, s.NotAfter.Format(time.RFC3339))
			}
		case certstore.EventReloadFailed:
			log.Printf("reload refused, still serving generation %d: %v", ev.Generation, ev.Err)
		}
	})
	defer cancel()

	base := &tls.Config{MinVersion: tls.VersionTLS12, NextProtos: []string{"h2", "http/1.1"}}
	if *clientAuth {
		base.ClientAuth = tls.RequireAndVerifyClientCert
	}
	srv := &http.Server{
		Addr:              *addr,
		TLSConfig:         store.ServerTLSConfig(base),
		ReadHeaderTimeout: 10 * time.Second,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			s, _ := store.Current()
			fmt.Fprintf(w, "hello over %s; certificate generation %d serial %s\n", r.Proto, s.Generation, s.Serial)
		}),
	}

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGHUP, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		for s := range sig {
			if s == syscall.SIGHUP {
				if err := store.Reload(); err != nil {
					log.Printf("SIGHUP reload: %v", err)
				}
				continue
			}
			ctx, stop := context.WithTimeout(context.Background(), 5*time.Second)
			_ = srv.Shutdown(ctx)
			stop()
			return
		}
	}()

	log.Printf("listening on https://%s", *addr)
	if err := srv.ListenAndServeTLS("", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Fatal(err)
	}
}
