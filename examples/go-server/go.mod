module github.com/certstore-dev/certstore/examples/go-server

go 1.26.0

require github.com/certstore-dev/certstore/go-bindings/certstore v0.1.0

replace github.com/certstore-dev/certstore/go-bindings/certstore => ../../go-bindings/certstore
