// Copyright The certstore Authors
// SPDX-License-Identifier: Apache-2.0

package certstoreextension // import "github.com/certstore-dev/certstore/go-bindings/certstoreextension"

import (
	"context"
	"crypto/tls"
	"fmt"
	"slices"
	"sync"

	"go.opentelemetry.io/collector/config/configtls"
)

// configtlsDefaultCurves is what configtls puts in CurvePreferences when curve_preferences is
// not set (every curve it allows, in no fixed order): a config holding exactly these did not
// choose curves.
var configtlsDefaultCurves = sync.OnceValue(func() []tls.CurveID {
	cfg, err := (configtls.ClientConfig{}).LoadTLSConfig(context.Background())
	if err != nil || cfg == nil {
		return nil
	}
	return cfg.CurvePreferences
})

// chosenCurves returns curves, or nil when they are configtls's default set.
func chosenCurves(curves []tls.CurveID) []tls.CurveID {
	def := configtlsDefaultCurves()
	if len(curves) == len(def) && !slices.ContainsFunc(curves, func(c tls.CurveID) bool { return !slices.Contains(def, c) }) {
		return nil
	}
	return curves
}

// mergePolicy applies the TLS policy of a component's own tls: block (other, parsed by
// configtls) to base, the extension's config: the higher min_version, the lower max_version,
// and the cipher suites and curves both allow, in the extension's order. Neither side's
// setting is dropped: when the two leave nothing in common, the error names the field, so the
// component does not start rather than run weaker than configured. other nil: base as is.
func mergePolicy(base, other *tls.Config, otherName string) (*tls.Config, error) {
	out := base.Clone()
	if other == nil {
		return out, nil
	}
	out.MinVersion = max(base.MinVersion, other.MinVersion)
	switch {
	case base.MaxVersion == 0:
		out.MaxVersion = other.MaxVersion
	case other.MaxVersion != 0:
		out.MaxVersion = min(base.MaxVersion, other.MaxVersion)
	}
	if out.MaxVersion != 0 && out.MinVersion > out.MaxVersion {
		return nil, fmt.Errorf("min_version %s and max_version %s (of the extension and %s together) leave no TLS version",
			tls.VersionName(out.MinVersion), tls.VersionName(out.MaxVersion), otherName)
	}
	var err error
	if out.CipherSuites, err = intersect("cipher_suites", base.CipherSuites, other.CipherSuites, otherName); err != nil {
		return nil, err
	}
	if out.CurvePreferences, err = intersect("curve_preferences", chosenCurves(base.CurvePreferences),
		chosenCurves(other.CurvePreferences), otherName); err != nil {
		return nil, err
	}
	return out, nil
}

// intersect keeps what both lists allow, in a's order; an empty list allows everything.
func intersect[T comparable](field string, a, b []T, otherName string) ([]T, error) {
	if len(b) == 0 {
		return slices.Clone(a), nil
	}
	if len(a) == 0 {
		return slices.Clone(b), nil
	}
	var out []T
	for _, x := range a {
		if slices.Contains(b, x) {
			out = append(out, x)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s of the extension and of %s have none in common", field, otherName)
	}
	return out, nil
}
