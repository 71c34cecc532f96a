package certstore

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
)

// buildSnapshot turns the bytes copied from the library into Go values, then wipes the PEM
// buffers. The library has validated everything (key matches the leaf, validity window, CA
// bundle): this only decodes, it does not judge again.
func buildSnapshot(raw *rawSnapshot) (*Snapshot, error) {
	defer clear(raw.keyPEM)
	defer clear(raw.certPEM)

	snap := &Snapshot{
		Generation:        raw.generation,
		NotBefore:         raw.notBefore,
		NotAfter:          raw.notAfter,
		Serial:            raw.serial,
		FingerprintSHA256: raw.fingerprint,
		CANotAfter:        raw.caNotAfter,
	}
	chain := certDERs(raw.certPEM)
	if len(chain) == 0 {
		return nil, fmt.Errorf("certstore: generation %d: no certificate in the chain", raw.generation)
	}
	leaf, err := x509.ParseCertificate(chain[0])
	if err != nil {
		return nil, fmt.Errorf("certstore: generation %d: leaf: %w", raw.generation, err)
	}
	key, err := parseKey(raw.keyPEM)
	if err != nil {
		return nil, fmt.Errorf("certstore: generation %d: key: %w", raw.generation, err)
	}
	snap.Certificate = tls.Certificate{Certificate: chain, PrivateKey: key, Leaf: leaf}

	for _, der := range certDERs(raw.caPEM) {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, fmt.Errorf("certstore: generation %d: CA bundle: %w", raw.generation, err)
		}
		snap.CACerts = append(snap.CACerts, c)
	}
	return snap, nil
}

func certDERs(p []byte) [][]byte {
	var out [][]byte
	for {
		var b *pem.Block
		b, p = pem.Decode(p)
		if b == nil {
			return out
		}
		if b.Type == "CERTIFICATE" {
			out = append(out, b.Bytes)
		}
	}
}

// parseKey decodes the first private key block (PKCS#8, PKCS#1 or SEC1) and wipes its DER.
func parseKey(p []byte) (crypto.PrivateKey, error) {
	for {
		var b *pem.Block
		b, p = pem.Decode(p)
		if b == nil {
			return nil, errors.New("no private key")
		}
		switch b.Type {
		case "PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY":
		default:
			continue
		}
		defer clear(b.Bytes)
		if k, err := x509.ParsePKCS8PrivateKey(b.Bytes); err == nil {
			switch k := k.(type) {
			case *rsa.PrivateKey, *ecdsa.PrivateKey, ed25519.PrivateKey:
				return k, nil
			}
			return nil, fmt.Errorf("unsupported PKCS#8 key type %T", k)
		}
		if k, err := x509.ParsePKCS1PrivateKey(b.Bytes); err == nil {
			return k, nil
		}
		if k, err := x509.ParseECPrivateKey(b.Bytes); err == nil {
			return k, nil
		}
		return nil, fmt.Errorf("cannot parse %s block", b.Type)
	}
}
