// Copyright The certstore Authors
// SPDX-License-Identifier: Apache-2.0

package main

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"math/big"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/exporters/otlp/otlptrace"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/sdk/instrumentation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/credentials"
)

// spanSender exports batches of spans with the OTel Go SDK OTLP/gRPC exporter, retries off, so
// every failed export is counted.
type spanSender struct {
	name     string
	endpoint string
	tlsCfg   *tls.Config // nil: plaintext
	every    time.Duration

	ok, fail atomic.Int64
	mu       sync.Mutex
	err      error
	seen     map[string]bool // serials of the server leaves this sender's connections verified

	stop func() // stops run and waits for it; set by start
}

func newSender(name, endpoint string, tlsCfg *tls.Config, every time.Duration) *spanSender {
	return &spanSender{name: name, endpoint: endpoint, tlsCfg: tlsCfg, every: every}
}

func (s *spanSender) lastErr() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// sawSerial reports whether one of the sender's TLS handshakes was served the leaf with serial.
func (s *spanSender) sawSerial(serial *big.Int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.seen[serial.String()]
}

// start runs the sender in the background until ctx is done or s.stop is called.
func (s *spanSender) start(ctx context.Context) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); s.run(ctx) }()
	var once sync.Once
	s.stop = func() { once.Do(func() { cancel(); <-done }) }
}

func (s *spanSender) exporter(ctx context.Context) (*otlptrace.Exporter, error) {
	opts := []otlptracegrpc.Option{
		otlptracegrpc.WithEndpoint(s.endpoint),
		otlptracegrpc.WithRetry(otlptracegrpc.RetryConfig{Enabled: false}),
		otlptracegrpc.WithTimeout(5 * time.Second),
	}
	if s.tlsCfg != nil {
		cfg := s.tlsCfg.Clone()
		cfg.ServerName = "127.0.0.1"
		// Record the serial every handshake of this sender is served (the exporter's own
		// connections, not a separate probe).
		cfg.VerifyConnection = func(st tls.ConnectionState) error {
			if len(st.PeerCertificates) > 0 {
				s.mu.Lock()
				if s.seen == nil {
					s.seen = map[string]bool{}
				}
				s.seen[st.PeerCertificates[0].SerialNumber.String()] = true
				s.mu.Unlock()
			}
			return nil
		}
		opts = append(opts, otlptracegrpc.WithTLSCredentials(credentials.NewTLS(cfg)))
	} else {
		opts = append(opts, otlptracegrpc.WithInsecure())
	}
	return otlptracegrpc.New(ctx, opts...)
}

func spans(n int) []sdktrace.ReadOnlySpan {
	stubs := make(tracetest.SpanStubs, n)
	now := time.Now()
	for i := range stubs {
		var tid trace.TraceID
		var sid trace.SpanID
		_, _ = rand.Read(tid[:])
		_, _ = rand.Read(sid[:])
		stubs[i] = tracetest.SpanStub{
			Name: "certstore-e2e",
			SpanContext: trace.NewSpanContext(trace.SpanContextConfig{
				TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled}),
			SpanKind:             trace.SpanKindClient,
			StartTime:            now.Add(-time.Millisecond),
			EndTime:              now,
			InstrumentationScope: instrumentation.Scope{Name: "certstore-e2e"},
		}
	}
	return stubs.Snapshots()
}

func (s *spanSender) record(err error) {
	if err != nil {
		s.fail.Add(1)
		s.mu.Lock()
		s.err = err
		s.mu.Unlock()
		return
	}
	s.ok.Add(1)
}

// run exports a batch every s.every on one long-lived exporter (its gRPC connection is
// re-established by gRPC whenever the server closes it) until ctx is done.
func (s *spanSender) run(ctx context.Context) {
	exp, err := s.exporter(ctx)
	if err != nil {
		s.record(err)
		return
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = exp.Shutdown(sctx)
	}()
	t := time.NewTicker(s.every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		ectx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := exp.ExportSpans(ectx, spans(5))
		cancel()
		if ctx.Err() != nil {
			return // shutting down: not an export failure
		}
		s.record(err)
	}
}

// exportOnce exports one batch on a new connection.
func (s *spanSender) exportOnce(ctx context.Context) error {
	exp, err := s.exporter(ctx)
	if err != nil {
		return err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = exp.Shutdown(sctx)
	}()
	ectx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	err = exp.ExportSpans(ectx, spans(1))
	s.record(err)
	return err
}
