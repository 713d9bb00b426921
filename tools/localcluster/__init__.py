"""The local Kubernetes control plane for ciclo's tests, benchmarks and demo.

Test and demo tooling, not product code: `launcher` starts kwokctl's binary
runtime from the binaries `make tools` built, and `node` a kubelet with containerd
that runs pods from the ciclo image.
"""
