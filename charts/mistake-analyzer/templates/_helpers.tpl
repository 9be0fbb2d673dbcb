{{/* Chart name, possibly overridden. */}}
{{- define "mistake-analyzer.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Prefix of every object name; room is left for the longest suffix ("-operator"). */}}
{{- define "mistake-analyzer.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 50 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 50 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 50 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "mistake-analyzer.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels of every object. */}}
{{- define "mistake-analyzer.labels" -}}
helm.sh/chart: {{ include "mistake-analyzer.chart" . }}
app.kubernetes.io/name: {{ include "mistake-analyzer.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: mistake-analyzer
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Selector of the operator pod (immutable on the Deployment: never add to it). */}}
{{- define "mistake-analyzer.operatorSelector" -}}
app.kubernetes.io/name: {{ include "mistake-analyzer.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end }}

{{- define "mistake-analyzer.operatorServiceAccount" -}}
{{- default (printf "%s-operator" (include "mistake-analyzer.fullname" .)) .Values.operator.serviceAccount.name }}
{{- end }}

{{- define "mistake-analyzer.jobServiceAccount" -}}
{{- default (printf "%s-job" (include "mistake-analyzer.fullname" .)) .Values.job.serviceAccount.name }}
{{- end }}

{{- define "mistake-analyzer.triggerServiceAccount" -}}
{{- default (printf "%s-trigger" (include "mistake-analyzer.fullname" .)) .Values.trigger.serviceAccount.name }}
{{- end }}

{{/* repository@digest when a digest is given, else repository:tag (tag defaults to appVersion). */}}
{{- define "mistake-analyzer.image" -}}
{{- $image := .image -}}
{{- if $image.digest -}}
{{- printf "%s@%s" $image.repository $image.digest -}}
{{- else -}}
{{- printf "%s:%s" $image.repository (default .root.Chart.AppVersion $image.tag) -}}
{{- end -}}
{{- end }}

{{/* Namespaces whose MistakeAnalyses the operator handles (a list; ["*"] when watching all). */}}
{{- define "mistake-analyzer.watchNamespaces" -}}
{{- if .Values.operator.watchAllNamespaces -}}
{{- toJson (list "*") -}}
{{- else if .Values.operator.watchNamespaces -}}
{{- toJson (uniq .Values.operator.watchNamespaces) -}}
{{- else -}}
{{- toJson (list .Release.Namespace) -}}
{{- end -}}
{{- end }}

{{/* Namespaces that get namespaced RBAC and the job ServiceAccount: the watched ones, or the release's when all. */}}
{{- define "mistake-analyzer.rbacNamespaces" -}}
{{- if or .Values.operator.watchAllNamespaces (not .Values.operator.watchNamespaces) -}}
{{- toJson (list .Release.Namespace) -}}
{{- else -}}
{{- toJson (uniq .Values.operator.watchNamespaces) -}}
{{- end -}}
{{- end }}

{{- define "mistake-analyzer.operatorRules" -}}
# MistakeAnalyses: watch and reconcile; create for the sweeper and CLI; delete for TTL clean-up.
- apiGroups: ["mistakes.dev"]
  resources: ["mistakeanalyses"]
  verbs: ["get", "list", "watch", "create", "update", "patch", "delete"]
- apiGroups: ["mistakes.dev"]
  resources: ["mistakeanalyses/status"]
  verbs: ["get", "update", "patch"]
# One batch Job per batch; patch for orphan adoption and labels, delete on cancellation and clean-up.
- apiGroups: ["batch"]
  resources: ["jobs"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
# Read-only: pod statuses tell OOM kills and exit codes apart when a Job fails.
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["get", "list", "watch"]
# kopf posts Kubernetes events about handler progress and errors.
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- end }}

{{- define "mistake-analyzer.jobRules" -}}
- apiGroups: ["mistakes.dev"]
  resources: ["mistakeanalyses"]
  verbs: ["get", "patch"]
- apiGroups: ["mistakes.dev"]
  resources: ["mistakeanalyses/status"]
  verbs: ["get", "patch"]
{{- end }}

{{- define "mistake-analyzer.egressRules" -}}
# DNS, then the endpoints the values name (the Kubernetes API, Appwrite, the LLM).
- ports:
    - port: 53
      protocol: UDP
    - port: 53
      protocol: TCP
{{- with .Values.networkPolicy.egress }}
{{ toYaml . }}
{{- end }}
{{- end }}
