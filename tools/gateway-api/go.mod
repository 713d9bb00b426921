// Pins the Gateway API whose standard-channel CRDs (Gateway, HTTPRoute, ...) the rollout
// tests install; nothing is built: tools/build.sh copies the CRD files out of the module.
// v1.4.0 is the version the pinned Traefik (tools/traefik) is built against.
module ciclo.dev/tools/gateway-api

go 1.26.0

require sigs.k8s.io/gateway-api v1.4.0
