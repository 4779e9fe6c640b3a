{{/*
Names, labels and the two switches every template agrees on: whether the operator is
namespaced, and whether leader election is in effect.
*/}}

{{- define "secret-sync.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "secret-sync.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "secret-sync.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "secret-sync.selectorLabels" -}}
app.kubernetes.io/name: {{ include "secret-sync.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "secret-sync.labels" -}}
helm.sh/chart: {{ include "secret-sync.chart" . }}
{{ include "secret-sync.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: controller
{{- end -}}

{{- define "secret-sync.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "secret-sync.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "secret-sync.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag | toString) -}}
{{- end -}}

{{/* "true" when leader election is in effect (explicitly, or because of several replicas). */}}
{{- define "secret-sync.leaderElect" -}}
{{- if or .Values.leaderElection.enabled (gt (int .Values.replicaCount) 1) -}}true{{- end -}}
{{- end -}}

{{/* The single namespace watched in namespaced mode; empty in cluster mode. */}}
{{- define "secret-sync.watchNamespace" -}}
{{- .Values.scope.namespace | default "" -}}
{{- end -}}

{{/*
The RBAC rules for the resources the operator reconciles. Shared by the ClusterRole (cluster
mode) and the Role (namespaced mode); the cluster-only rules are added by the caller.
*/}}
{{- define "secret-sync.workloadRules" -}}
- apiGroups: ["external-secrets.io"]
  resources: ["externalsecrets", "secretstores"{{ if not (include "secret-sync.watchNamespace" .) }}, "clustersecretstores"{{ end }}]
  verbs: ["get", "list", "watch"]
- apiGroups: ["external-secrets.io"]
  resources: ["externalsecrets/status", "secretstores/status"{{ if not (include "secret-sync.watchNamespace" .) }}, "clustersecretstores/status"{{ end }}]
  verbs: ["update", "patch"]
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get", "list", "watch", "create", "update", "patch", "delete"]
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create", "patch"]
# target.template.templateFrom ConfigMaps: read when rendering, watched (metadata only) for changes.
- apiGroups: [""]
  resources: ["configmaps"]
  verbs: ["get", "list", "watch"]
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
# dataFrom[].sourceRef.generatorRef: the generator objects are read at each sync.
- apiGroups: ["generators.external-secrets.io"]
  resources: ["ecrauthorizationtokens", "passwords"{{ if not (include "secret-sync.watchNamespace" .) }}, "clustergenerators"{{ end }}]
  verbs: ["get", "list", "watch"]
{{- if .Values.auth.jwt.enabled }}
- apiGroups: [""]
  resources: ["serviceaccounts/token"]
  verbs: ["create"]
# The role to assume may come from the ServiceAccount's eks.amazonaws.com/role-arn annotation.
- apiGroups: [""]
  resources: ["serviceaccounts"]
  verbs: ["get"]
{{- end }}
{{- if .Values.reload.enabled }}
- apiGroups: ["apps"]
  resources: ["deployments", "statefulsets", "daemonsets"]
  verbs: ["get", "list", "watch", "patch"]
{{- end }}
{{- end -}}
