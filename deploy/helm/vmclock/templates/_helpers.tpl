{{/* Labels of the operator's own objects; `component` is operator or metrics. Same as deploy/base. */}}
{{- define "vmclock.labels" -}}
app.kubernetes.io/name: vmclock-operator
app.kubernetes.io/component: {{ . }}
app.kubernetes.io/part-of: vmclock
{{- end }}

{{/* The subject of every binding: the operator's ServiceAccount in the release namespace. */}}
{{- define "vmclock.subject" -}}
subjects:
  - kind: ServiceAccount
    name: vmclock-operator
    namespace: {{ .Release.Namespace }}
{{- end }}

{{/* Cluster-scoped bindings of a tenants install are suffixed with the release namespace, so that installs
     in several namespaces do not overwrite each other's subjects (as overlays/tenants does). */}}
{{- define "vmclock.clusterBindingName" -}}
{{- $name := index . 0 -}}{{- $root := index . 1 -}}
{{- if $root.Values.tenants }}{{ $name }}.{{ $root.Release.Namespace }}{{ else }}{{ $name }}{{ end -}}
{{- end }}

{{/* A RoleBinding or ClusterRoleBinding of ClusterRole `role`: (list kind name role namespace root);
     namespace "" for a ClusterRoleBinding. */}}
{{- define "vmclock.binding" -}}
{{- $kind := index . 0 -}}{{- $name := index . 1 -}}{{- $role := index . 2 -}}
{{- $namespace := index . 3 -}}{{- $root := index . 4 -}}
apiVersion: rbac.authorization.k8s.io/v1
kind: {{ $kind }}
metadata:
  name: {{ $name }}
  {{- with $namespace }}
  namespace: {{ . }}
  {{- end }}
  labels:
    {{- include "vmclock.labels" "operator" | nindent 4 }}
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: {{ $role }}
{{ include "vmclock.subject" $root }}
{{- end }}

{{/* Checks that JSON schema cannot express across two values. */}}
{{- define "vmclock.validate" -}}
{{- if and .Values.peering.enabled .Values.tenants -}}
{{- fail "peering.enabled=true needs tenants=[] (standby replicas serve the whole cluster; with tenants kopf would need a KopfPeering in every tenant namespace)" -}}
{{- end -}}
{{- end }}
