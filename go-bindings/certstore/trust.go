package certstore

import "crypto/x509"

// TrustedCAs returns the certificates trusted now: the current CA bundle followed, during a CA
// overlap, by the previous one (what CAPool holds, as a list: e.g. to write the overlap bundle
// to a file). nil without a CA file. The slice is new; do not modify the certificates.
func (s *Store) TrustedCAs() []*x509.Certificate {
	st := s.current()
	if !st.hasCA {
		return nil
	}
	out := make([]*x509.Certificate, 0, len(st.snap.CACerts)+len(st.prevCA))
	out = append(out, st.snap.CACerts...)
	return append(out, st.prevCA...)
}
