{{- define "weft.labels" -}}
app.kubernetes.io/name: weft-controller
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}
{{- define "weft.selector" -}}
app.kubernetes.io/name: weft-controller
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}
