module github.com/libnexus/libnexus/bindings/go

go 1.19
