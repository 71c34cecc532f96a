module github.com/certstore-dev/certstore/go-bindings

go 1.25.0
