// Copyright The certstore Authors
// SPDX-License-Identifier: Apache-2.0

package certstoreextension // import "github.com/certstore-dev/certstore/go-bindings/certstoreextension"

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
	"sync"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/config/configtls"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/extension/extensioncapabilities"
)

var _ extensioncapabilities.ConfigSnapshotWatcher = (*certstoreExtension)(nil)

// NotifyConfigSnapshot refuses the collector's start when a receiver or exporter that names
// this extension in its middlewares also sets fields of its own tls: block that cannot apply
// there: configgrpc gives a gRPC middleware no access to the component's TLS settings, so
// they would be dropped without a word. The service calls this after the extensions started
// and before the pipelines; an error here fails the start.
func (e *certstoreExtension) NotifyConfigSnapshot(_ context.Context, snapshot extensioncapabilities.ConfigSnapshot) error {
	conf := snapshot.Effective()
	if conf == nil {
		return nil
	}
	return unappliedTLSFields(conf.ToStringMap(), e.id)
}

// httpClientPolicyFields are the tls: fields of an HTTP client that apply with certstore
// (merged with the extension's policy, see mergePolicy); gRPC paths apply none.
var httpClientPolicyFields = []string{"min_version", "max_version", "cipher_suites", "curve_preferences"}

// unappliedTLSFields checks the receivers and exporters of an effective collector config.
func unappliedTLSFields(cfg map[string]any, id component.ID) error {
	var errs []error
	for _, kind := range []string{"receivers", "exporters"} {
		components, _ := cfg[kind].(map[string]any)
		for _, name := range slices.Sorted(maps.Keys(components)) {
			forEachMap(components[name], func(m map[string]any) {
				if !namesMiddleware(m, id) {
					return
				}
				own, _ := m["tls"].(map[string]any)
				set := setTLSFields(own, "")
				if len(set) == 0 {
					return
				}
				path, allowed := "a gRPC server", []string(nil)
				if kind == "exporters" {
					path = "a gRPC client"
					if isHTTPClient(m) {
						path, allowed = "an HTTP client", httpClientPolicyFields
					}
				}
				set = slices.DeleteFunc(set, func(f string) bool { return slices.Contains(allowed, f) })
				if len(set) > 0 {
					errs = append(errs, fmt.Errorf("%s %q: its tls: block sets %s, which cannot apply on %s whose "+
						"TLS comes from the middleware %s; remove them and set the TLS policy on that extension",
						strings.TrimSuffix(kind, "s"), name, strings.Join(set, ", "), path, id))
				}
			})
		}
	}
	return errors.Join(errs...)
}

// forEachMap calls f on v and on every map nested in v (through maps and lists).
func forEachMap(v any, f func(map[string]any)) {
	switch v := v.(type) {
	case map[string]any:
		f(v)
		for _, k := range slices.Sorted(maps.Keys(v)) {
			forEachMap(v[k], f)
		}
	case []any:
		for _, x := range v {
			forEachMap(x, f)
		}
	}
}

// namesMiddleware tells whether m's middlewares list has an entry with this id.
func namesMiddleware(m map[string]any, id component.ID) bool {
	list, _ := m["middlewares"].([]any)
	for _, entry := range list {
		if em, ok := entry.(map[string]any); ok && fmt.Sprint(em["id"]) == id.String() {
			return true
		}
	}
	return false
}

// isHTTPClient tells a confighttp client from a configgrpc one by keys only one of them
// marshals (both accept an http:// or https:// endpoint), else by the endpoint's scheme.
func isHTTPClient(m map[string]any) bool {
	if _, grpc := m["balancer_name"]; grpc {
		return false
	}
	if _, http := m["force_attempt_http2"]; http {
		return true
	}
	if keepalive, _ := m["keepalive"].(map[string]any); keepalive != nil {
		if _, http := keepalive["idle_conn_timeout"]; http {
			return true
		}
	}
	endpoint, _ := m["endpoint"].(string)
	return strings.HasPrefix(endpoint, "http://") || strings.HasPrefix(endpoint, "https://")
}

// tlsDefaults is what configtls's default client and server configs marshal to: a field at
// its default was not set by the user (the effective config holds every default).
var tlsDefaults = sync.OnceValue(func() map[string]any {
	out := map[string]any{}
	for _, def := range []any{configtls.NewDefaultClientConfig(), configtls.NewDefaultServerConfig()} {
		conf := confmap.New()
		if err := conf.Marshal(def); err == nil {
			maps.Copy(out, conf.ToStringMap())
		}
	}
	return out
})

// setTLSFields lists the fields of a tls: map (nested ones as parent::child) that hold
// neither a zero value nor configtls's default.
func setTLSFields(m map[string]any, prefix string) []string {
	var out []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		name := prefix + k
		switch v := m[k].(type) {
		case map[string]any:
			out = append(out, setTLSFields(v, name+"::")...)
		default:
			if isZero(v) || (prefix == "" && reflect.DeepEqual(v, tlsDefaults()[k])) {
				continue
			}
			out = append(out, name)
		}
	}
	return out
}

func isZero(v any) bool {
	if v == nil {
		return true
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Slice, reflect.Map:
		return rv.Len() == 0
	default:
		return rv.IsZero()
	}
}
