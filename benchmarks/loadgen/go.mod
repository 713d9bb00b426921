// The serving benchmark's load generator: the Go standard library only.
module ciclo.dev/benchmarks/loadgen

go 1.26.0
