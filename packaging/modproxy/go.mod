module github.com/certstore-dev/certstore/packaging/modproxy

go 1.26.0

require golang.org/x/mod v0.42.0
