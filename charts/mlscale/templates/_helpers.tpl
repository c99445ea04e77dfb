{{/*
Chart name, or nameOverride.
*/}}
{{- define "mlscale.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Prefix of every object name: "<release>-operator" when the release name contains the chart
name (the usual `helm install mlscale ...` gives "mlscale-operator"), else
"<release>-<chart>-operator"; fullnameOverride replaces it.
*/}}
{{- define "mlscale.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := include "mlscale.name" . }}
{{- if contains $name .Release.Name }}
{{- printf "%s-operator" .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s-operator" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Chart name and version, for the helm.sh/chart label.
*/}}
{{- define "mlscale.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Labels that select the operator pods (never change them: Deployment selectors are immutable).
*/}}
{{- define "mlscale.selectorLabels" -}}
app.kubernetes.io/name: {{ include "mlscale.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end }}

{{/*
Labels on every object of the release.
*/}}
{{- define "mlscale.labels" -}}
{{ include "mlscale.selectorLabels" . }}
app.kubernetes.io/part-of: mlscale
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ include "mlscale.chart" . }}
{{- end }}

{{/*
Name of the ServiceAccount the operator runs as.
*/}}
{{- define "mlscale.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "mlscale.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
Image reference: repository and tag (the chart's appVersion when image.tag is empty).
*/}}
{{- define "mlscale.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/*
True ("true") when the operator watches every namespace.
*/}}
{{- define "mlscale.clusterwide" -}}
{{- if not .Values.watch.namespaces }}true{{ end }}
{{- end }}

{{/*
RBAC rules on cluster-scoped objects: CRDs and namespaces, which kopf observes to learn what
it can watch, and the cluster-wide peering objects.
*/}}
{{- define "mlscale.clusterRules" -}}
- apiGroups: ["apiextensions.k8s.io"]
  resources: ["customresourcedefinitions"]
  verbs: ["get", "list", "watch"]
- apiGroups: [""]
  resources: ["namespaces"]
  verbs: ["get", "list", "watch"]
# Contention: the cores a node can give and what the pods already on it request.
- apiGroups: [""]
  resources: ["nodes"]
  verbs: ["get", "list"]
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["list"]
{{- if and .Values.peering.enabled (include "mlscale.clusterwide" .) }}
- apiGroups: ["kopf.dev"]
  resources: ["clusterkopfpeerings"]
  verbs: ["get", "list", "watch", "patch"]
{{- end }}
{{- end }}

{{/*
RBAC rules on namespaced objects: mlscale's resources, the children the operator creates for
them (pods, with the resize subresource for in-place CPU changes, services, configmaps, PVCs,
deployments), the events it posts and, with peering, the namespaced peering objects.
*/}}
{{- define "mlscale.namespacedRules" -}}
- apiGroups: ["mlscale.dev"]
  resources: ["deadlinejobs", "federatedtrainings", "inferenceservices"]
  verbs: ["get", "list", "watch", "patch"]
- apiGroups: ["mlscale.dev"]
  resources: ["deadlinejobs/status", "federatedtrainings/status", "inferenceservices/status"]
  verbs: ["get", "patch"]
- apiGroups: ["mlscale.dev"]
  resources: ["deadlinejobs/finalizers", "federatedtrainings/finalizers", "inferenceservices/finalizers"]
  verbs: ["update"]
# deletecollection: the Spark driver's Role (which the operator creates) needs it to remove its
# executors, and Kubernetes lets the operator grant only what it holds itself.
- apiGroups: [""]
  resources: ["pods", "services", "configmaps", "persistentvolumeclaims"]
  verbs: ["get", "list", "watch", "create", "patch", "delete", "deletecollection"]
- apiGroups: [""]
  resources: ["pods/resize"]
  verbs: ["get", "patch"]
# The CPU each executor used, as metrics-server measures it (reported in a DeadlineJob's status).
- apiGroups: ["metrics.k8s.io"]
  resources: ["pods"]
  verbs: ["get", "list"]
# The Spark driver runs under its own ServiceAccount, Role and RoleBinding, one per DeadlineJob.
- apiGroups: [""]
  resources: ["serviceaccounts"]
  verbs: ["get", "list", "create", "delete"]
# The token of each InferenceService's router admin API, made and removed by the operator
# (RBAC cannot narrow get to those Secrets; the operator reads only the ones it names, and lists none).
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get", "create", "delete"]
- apiGroups: ["rbac.authorization.k8s.io"]
  resources: ["roles"]
  verbs: ["get", "create", "delete"]
# patch: the binding follows a driver account named in spec.driver.template until the job starts.
- apiGroups: ["rbac.authorization.k8s.io"]
  resources: ["rolebindings"]
  verbs: ["get", "create", "patch", "delete"]
- apiGroups: ["apps"]
  resources: ["deployments"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: ["apps"]
  resources: ["deployments/scale"]
  verbs: ["get", "patch"]
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create", "patch", "list"]
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- if and .Values.peering.enabled (not (include "mlscale.clusterwide" .)) }}
- apiGroups: ["kopf.dev"]
  resources: ["kopfpeerings"]
  verbs: ["get", "list", "watch", "patch"]
{{- end }}
{{- end }}
