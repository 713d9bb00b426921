// Pins the Prometheus Operator whose CRDs (PodMonitor, PrometheusRule) the tests install;
// nothing is built: tools/build.sh copies the CRD files out of the module.
module ciclo.dev/tools/prometheus-operator

go 1.26.0

require (
	github.com/prometheus-operator/prometheus-operator v0.85.0
)
