module github.com/certstore-dev/certstore/go-bindings/certstore

go 1.26.0
