{{/*
Names, labels and the fixed paths of the pod. The paths are the interface between the two
containers and the command lines of K8S_CONTRACT.md; change them together.
*/}}

{{- define "clusterlink.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name: <release>-<chart>, or the release name alone when it already contains the chart name.
Truncated to 63 characters (DNS-1035 label: Service names).
*/}}
{{- define "clusterlink.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "clusterlink.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Selector labels: the Deployment's selector, the external Service's selector, and (as
--k8s-selector) the selector of every import Service the controlplane creates. They never
change across upgrades (a Deployment's selector is immutable).
*/}}
{{- define "clusterlink.selectorLabels" -}}
{{- toYaml (dict "app.kubernetes.io/name" (include "clusterlink.name" .) "app.kubernetes.io/instance" .Release.Name "app.kubernetes.io/component" "gateway") }}
{{- end }}

{{/* The selector labels as the controlplane's --k8s-selector value: k=v,k=v (sorted). */}}
{{- define "clusterlink.selectorFlag" -}}
{{- $labels := include "clusterlink.selectorLabels" . | fromYaml }}
{{- $pairs := list }}
{{- range $k := keys $labels | sortAlpha }}
{{- $pairs = append $pairs (printf "%s=%s" $k (get $labels $k)) }}
{{- end }}
{{- join "," $pairs }}
{{- end }}

{{- define "clusterlink.labels" -}}
helm.sh/chart: {{ include "clusterlink.chart" . | quote }}
{{ include "clusterlink.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service | quote }}
{{- end }}

{{- define "clusterlink.serviceAccountName" -}}
{{- include "clusterlink.fullname" . }}
{{- end }}

{{/* The state claim: an existing one, or the one this chart creates. */}}
{{- define "clusterlink.claimName" -}}
{{- if .Values.state.persistence.existingClaim }}
{{- .Values.state.persistence.existingClaim }}
{{- else }}
{{- printf "%s-state" (include "clusterlink.fullname" .) }}
{{- end }}
{{- end }}

{{/*
ClusterRole and ClusterRoleBinding names are cluster-wide: the namespace is part of them so two
releases of the same name in two namespaces do not collide.
*/}}
{{- define "clusterlink.clusterRoleName" -}}
{{- printf "%s-%s-pods" .Release.Namespace (include "clusterlink.fullname" .) }}
{{- end }}

{{- define "clusterlink.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* Required values, with messages that say what to set. */}}
{{- define "clusterlink.gatewayName" -}}
{{- required "gateway.name is required: this gateway's peer name, the name its certificate was made for (gwctl create peer-cert --name <name>); e.g. --set gateway.name=east" .Values.gateway.name }}
{{- end }}

{{- define "clusterlink.tlsSecret" -}}
{{- required "tls.existingSecret is required: the name of a Secret with the keys ca.pem, cert.pem and key.pem (kubectl create secret generic <name> --from-file=ca.pem=... --from-file=cert.pem=... --from-file=key.pem=...)" .Values.tls.existingSecret }}
{{- end }}

{{/* Fixed paths in the pod. */}}
{{- define "clusterlink.runDir" -}}/run/clusterlink{{- end }}
{{- define "clusterlink.stateDir" -}}/var/lib/clusterlink{{- end }}
{{- define "clusterlink.tlsDir" -}}/etc/clusterlink/tls{{- end }}
{{/* The dataplane's public port in the pod (the external Service's targetPort). */}}
{{- define "clusterlink.dataplanePort" -}}8443{{- end }}
{{/* The uid and gid the image's user has (charts/Containerfile). */}}
{{- define "clusterlink.uid" -}}10001{{- end }}
