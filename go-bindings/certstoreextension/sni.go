// Copyright The certstore Authors
// SPDX-License-Identifier: Apache-2.0

package certstoreextension // import "github.com/certstore-dev/certstore/go-bindings/certstoreextension"

import (
	"crypto/tls"
	"errors"
	"fmt"

	"github.com/certstore-dev/certstore/go-bindings/certstore"
)

// openStores opens one Store per configured certificate, the default first. On failure the
// Stores already opened are closed; the error names the list entry (the library's names the
// file and the reason).
func (e *certstoreExtension) openStores() ([]*certstore.Store, error) {
	certs := e.cfg.TLS.certificates()
	stores := make([]*certstore.Store, 0, len(certs))
	for i, c := range certs {
		s, err := certstore.Open(e.options(c))
		if err != nil {
			for _, o := range stores {
				_ = o.Close()
			}
			if e.cfg.TLS.Certificates != nil {
				err = fmt.Errorf("certificates[%d]: %w", i, err)
			}
			return nil, err
		}
		stores = append(stores, s)
	}
	return stores, nil
}

// serverTLSConfig is the server config of one listener: the Store's own with one certificate;
// with several, the one picking a Store per handshake by the client's server name. Each
// certificate rotates on its own either way.
func (e *certstoreExtension) serverTLSConfig(base *tls.Config) (*tls.Config, error) {
	if len(e.stores) == 1 {
		return e.store.ServerTLSConfig(base), nil
	}
	certs := e.cfg.TLS.certificates()
	sni := make([]certstore.SNIStore, len(e.stores))
	for i, s := range e.stores {
		sni[i] = certstore.SNIStore{Store: s, ServerNames: certs[i].ServerNames}
	}
	return certstore.ServerTLSConfigSNI(base, sni[0], sni[1:]...)
}

// certFile names certificate i in logs and messages.
func (e *certstoreExtension) certFile(i int) string {
	return e.cfg.TLS.certificates()[i].CertFile
}

// status is what the component status is evaluated from: the default certificate's Status, or
// the first other certificate's whose last reload failed (its error names its files), so one
// refused rotation of any certificate is reported.
func (e *certstoreExtension) status() certstore.Status {
	failing := func(st certstore.Status) bool {
		return st.LastError != nil && !errors.Is(st.LastError, certstore.ErrClosed)
	}
	st := e.store.Status()
	if failing(st) {
		return st
	}
	for _, s := range e.stores[1:] {
		if o := s.Status(); failing(o) {
			return o
		}
	}
	return st
}

// closeStores closes every Store (idempotent per Store) and returns the first error.
func (e *certstoreExtension) closeStores() error {
	var first error
	for _, s := range e.stores {
		if err := s.Close(); err != nil && first == nil {
			first = err
		}
	}
	return first
}
