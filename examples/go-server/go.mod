module github.com/certstore-dev/certstore/examples/go-server

go 1.26.0

require github.com/certstore-dev/certstore/go-bindings v0.0.0

replace github.com/certstore-dev/certstore/go-bindings => ../../go-bindings
