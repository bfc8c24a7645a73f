{{/* The name of namespaced objects: the release name, with "-weft" unless it says weft. */}}
{{- define "weft.fullname" -}}
{{- if contains "weft" .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-weft" .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* Cluster-scoped objects also carry the namespace, so two releases never share one. */}}
{{- define "weft.clusterName" -}}
{{- printf "%s-%s" (include "weft.fullname" .) .Release.Namespace | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "weft.labels" -}}
app.kubernetes.io/name: weft-controller
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "weft.selector" -}}
app.kubernetes.io/name: weft-controller
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "weft.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{/* The controller's Service DNS name (the xDS and webhook certificates carry it). */}}
{{- define "weft.serviceHost" -}}
{{ include "weft.fullname" . }}.{{ .Release.Namespace }}.svc
{{- end -}}
