// Copyright The certstore Authors
// SPDX-License-Identifier: Apache-2.0

// Command otlpsend sends a few spans with the OTel Go SDK OTLP/gRPC exporter over (m)TLS and
// prints the serial of the server certificate it was served. Used by examples/demo.sh.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"flag"
	"fmt"
	"net"
	"os"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"google.golang.org/grpc/credentials"
)

func main() {
	endpoint := flag.String("endpoint", "127.0.0.1:4317", "OTLP/gRPC endpoint")
	caFile := flag.String("ca", "", "CA bundle to verify the collector")
	certFile := flag.String("cert", "", "client certificate (mTLS)")
	keyFile := flag.String("key", "", "client key (mTLS)")
	serverName := flag.String("server-name", "localhost", "name to verify in the server certificate")
	n := flag.Int("spans", 5, "spans to send")
	flag.Parse()
	if err := run(*endpoint, *caFile, *certFile, *keyFile, *serverName, *n); err != nil {
		fmt.Fprintln(os.Stderr, "otlpsend:", err)
		os.Exit(1)
	}
}

func run(endpoint, caFile, certFile, keyFile, serverName string, n int) error {
	cfg := &tls.Config{ServerName: serverName, MinVersion: tls.VersionTLS12}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return err
		}
		cfg.RootCAs = x509.NewCertPool()
		if !cfg.RootCAs.AppendCertsFromPEM(pem) {
			return fmt.Errorf("no certificate in %s", caFile)
		}
	}
	if certFile != "" {
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return err
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	// The serial served to a new connection (what the exporter's connection gets as well).
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", endpoint,
		&tls.Config{ServerName: cfg.ServerName, RootCAs: cfg.RootCAs, Certificates: cfg.Certificates, NextProtos: []string{"h2"}})
	if err != nil {
		return fmt.Errorf("TLS handshake with %s: %w", endpoint, err)
	}
	serial := conn.ConnectionState().PeerCertificates[0].SerialNumber
	conn.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	exp, err := otlptracegrpc.New(ctx, otlptracegrpc.WithEndpoint(endpoint),
		otlptracegrpc.WithTLSCredentials(credentials.NewTLS(cfg)),
		otlptracegrpc.WithRetry(otlptracegrpc.RetryConfig{Enabled: false}))
	if err != nil {
		return err
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp),
		sdktrace.WithResource(resource.NewSchemaless(attribute.String("service.name", "certstore-demo"))))
	var exportErr error
	// WithSyncer exports on End and hands errors to the global handler: collect them.
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
		if exportErr == nil {
			exportErr = err
		}
	}))
	for i := 0; i < n; i++ {
		_, span := tp.Tracer("certstore-demo").Start(ctx, fmt.Sprintf("demo-span-%d", i))
		span.End()
	}
	if err := tp.Shutdown(ctx); err != nil && exportErr == nil {
		exportErr = err
	}
	if exportErr != nil {
		return fmt.Errorf("export: %w", exportErr)
	}
	fmt.Printf("sent %d spans over TLS to %s; server certificate serial %X\n", n, endpoint, serial)
	return nil
}
