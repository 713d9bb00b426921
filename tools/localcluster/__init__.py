"""The local Kubernetes control plane for ciclo's tests, benchmarks and demo.

Test and demo tooling, not product code: `launcher` starts kwokctl's binary
runtime from the binaries `make tools` built, `procnode` runs pods as local
processes.
"""
