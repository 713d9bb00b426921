{{/* The release's full name, at most 63 characters. */}}
{{- define "ciclo.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* Selector labels: stable for the life of a release. */}}
{{- define "ciclo.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* Every object's labels, through this one helper. */}}
{{- define "ciclo.labels" -}}
{{ include "ciclo.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: ciclo
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "ciclo.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "ciclo.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "ciclo.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* The restricted Pod Security Standard, for every container the chart runs. */}}
{{- define "ciclo.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities:
  drop: [ALL]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "ciclo.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* The rules the operator needs, exactly: what ciclo.kube and kopf call. */}}
{{- define "ciclo.rules" -}}
# Models, ModelVersions, MonitorPolicies: watched; spec-side fields (labels, finalizer)
# and status written with server-side apply or merge patch.
# MonitorPolicies (the MonitorPolicy controller): get/list/watch/patch and status patch;
# it retires a Model with a merge patch of spec.retired.
- apiGroups: [ciclo.dev]
  resources: [models, modelversions, monitorpolicies]
  verbs: [get, list, watch, patch]
- apiGroups: [ciclo.dev]
  resources: [models/status, modelversions/status, monitorpolicies/status]
  verbs: [get, patch]
# The serving Deployments and Services the operator owns (server-side apply creates
# them, which needs create as well as patch).
- apiGroups: [apps]
  resources: [deployments]
  verbs: [get, list, watch, create, patch, delete]
- apiGroups: [""]
  resources: [services]
  verbs: [get, list, watch, create, patch, delete]
# Reviews (approve, reject, comment): read, and recorded on their ModelVersion.
- apiGroups: [ciclo.dev]
  resources: [reviews]
  verbs: [get, list, watch]
# A candidate's evaluation Job (spec.promotion): created by server-side apply, read for
# its outcome, deleted once recorded.
- apiGroups: [batch]
  resources: [jobs]
  verbs: [get, list, create, patch, delete]
# Serving pods: readiness, and their /metrics for a MonitorPolicy with source "pods".
- apiGroups: [""]
  resources: [pods]
  verbs: [get, list, watch]
# Prometheus credentials a MonitorPolicy names.
- apiGroups: [""]
  resources: [secrets]
  verbs: [get]
# ciclo's Events (events.k8s.io) and kopf's own (core).
- apiGroups: [events.k8s.io]
  resources: [events]
  verbs: [create, patch]
- apiGroups: [""]
  resources: [events]
  verbs: [create]
# Scrape wiring, while the cluster serves the Prometheus Operator's CRDs (found through
# API discovery, which every authenticated user may read): a PodMonitor per Model, kept
# for the Model's life; a PrometheusRule per MonitorPolicy that asks for one, deleted
# when it no longer does. Server-side apply creates them: create as well as patch.
- apiGroups: [monitoring.coreos.com]
  resources: [podmonitors]
  verbs: [get, create, patch]
- apiGroups: [monitoring.coreos.com]
  resources: [prometheusrules]
  verbs: [get, create, patch, delete]
# The HTTPRoute of a Model whose spec.rollout names a Gateway: its backend weights split
# a canary's traffic. Server-side apply creates it.
- apiGroups: [gateway.networking.k8s.io]
  resources: [httproutes]
  verbs: [get, create, patch]
# A shadow's TraefikService, when the Gateway is Traefik's (spec.rollout.gateway.mirror):
# made for the shadow, removed after it.
- apiGroups: [traefik.io]
  resources: [traefikservices]
  verbs: [get, create, patch, delete]
# Training (docs/training.md): a Job per run, a CronJob per scheduled Model (server-side
# apply), and the tail of a failed run's log for the Model's TrainingFailed condition.
- apiGroups: [batch]
  resources: [jobs]
  verbs: [get, list, watch, create, delete]
- apiGroups: [batch]
  resources: [cronjobs]
  verbs: [get, list, create, patch, delete]
- apiGroups: [""]
  resources: [pods/log]
  verbs: [get]
{{- end -}}
