{{/*
The chart name (nameOverride wins), at most 63 characters.
*/}}
{{- define "llm-gateway.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The full name of the release's resources: <release>-<name>, or <release> when the release
name already contains the chart name; fullnameOverride wins. At most 63 characters
(a DNS-1123 label).
*/}}
{{- define "llm-gateway.fullname" -}}
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

{{/*
<fullname>-<suffix>, the full name shortened so the result stays within 63 characters.
Call with (dict "ctx" $ "suffix" "config").
*/}}
{{- define "llm-gateway.componentName" -}}
{{- $max := sub 62 (len .suffix) | int }}
{{- printf "%s-%s" (include "llm-gateway.fullname" .ctx | trunc $max | trimSuffix "-") .suffix }}
{{- end }}

{{/*
Chart name and version, for the helm.sh/chart label.
*/}}
{{- define "llm-gateway.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Selector labels of the release (name and instance). Workloads add a component label.
*/}}
{{- define "llm-gateway.selectorLabels" -}}
app.kubernetes.io/name: {{ include "llm-gateway.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
Selector labels of the gateway pods (Deployment, Service, PDB, spread constraints).
The migrate Job's pods have component "migrate" and match none of these selectors.
*/}}
{{- define "llm-gateway.gatewaySelectorLabels" -}}
{{ include "llm-gateway.selectorLabels" . }}
app.kubernetes.io/component: gateway
{{- end }}

{{/*
Common labels.
*/}}
{{- define "llm-gateway.labels" -}}
helm.sh/chart: {{ include "llm-gateway.chart" . }}
{{ include "llm-gateway.selectorLabels" . }}
{{- if .Chart.AppVersion }}
app.kubernetes.io/version: {{ .Chart.AppVersion | trunc 63 | trimSuffix "-" | quote }}
{{- end }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: llm-gateway
{{- end }}

{{/*
The ServiceAccount the gateway pods use.
*/}}
{{- define "llm-gateway.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "llm-gateway.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
The image reference: repository (required), then @digest or :tag (default appVersion).
*/}}
{{- define "llm-gateway.image" -}}
{{- $repo := required "image.repository is required (the gateway's image, e.g. <account>.dkr.ecr.<region>.amazonaws.com/llm-gateway)" .Values.image.repository }}
{{- if .Values.image.digest }}
{{- printf "%s@%s" $repo .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" $repo (.Values.image.tag | default .Chart.AppVersion | toString) }}
{{- end }}
{{- end }}

{{/*
The Secret the pods read: the existing one, or the chart's. Fails when neither is set.
*/}}
{{- define "llm-gateway.secretName" -}}
{{- if .Values.secrets.existingSecret }}
{{- .Values.secrets.existingSecret }}
{{- else if .Values.secrets.create }}
{{- include "llm-gateway.fullname" . }}
{{- else }}
{{- required "secrets.existingSecret is required when secrets.create is false (the gateway needs LITELLM_MASTER_KEY from a Secret)" .Values.secrets.existingSecret }}
{{- end }}
{{- end }}

{{/*
true when the chart makes the Secret.
*/}}
{{- define "llm-gateway.createSecret" -}}
{{- if and .Values.secrets.create (not .Values.secrets.existingSecret) }}true{{ end }}
{{- end }}

{{/*
The environment variables taken from the Secret, as a JSON list of
{"env": NAME, "key": KEY-IN-SECRET}.
*/}}
{{- define "llm-gateway.secretEnvList" -}}
{{- $list := list }}
{{- if include "llm-gateway.createSecret" . }}
{{- $list = append $list (dict "env" "LITELLM_MASTER_KEY" "key" "LITELLM_MASTER_KEY") }}
{{- if .Values.secrets.databaseUrl }}
{{- $list = append $list (dict "env" "DATABASE_URL" "key" "DATABASE_URL") }}
{{- end }}
{{- if .Values.secrets.redisPassword }}
{{- $list = append $list (dict "env" "REDIS_PASSWORD" "key" "REDIS_PASSWORD") }}
{{- end }}
{{- range $name := keys (.Values.secrets.providerKeys | default dict) | sortAlpha }}
{{- $list = append $list (dict "env" $name "key" $name) }}
{{- end }}
{{- else }}
{{- $k := .Values.secrets.existingSecretKeys }}
{{- if $k.masterKey }}
{{- $list = append $list (dict "env" "LITELLM_MASTER_KEY" "key" $k.masterKey) }}
{{- end }}
{{- if $k.databaseUrl }}
{{- $list = append $list (dict "env" "DATABASE_URL" "key" $k.databaseUrl) }}
{{- end }}
{{- if $k.redisPassword }}
{{- $list = append $list (dict "env" "REDIS_PASSWORD" "key" $k.redisPassword) }}
{{- end }}
{{- range $name := $k.providerKeys | default list }}
{{- $list = append $list (dict "env" $name "key" $name) }}
{{- end }}
{{- end }}
{{- toJson $list }}
{{- end }}

{{/*
true when the gateway gets a DATABASE_URL (and so the migrate Job has something to do).
*/}}
{{- define "llm-gateway.hasDatabase" -}}
{{- if include "llm-gateway.createSecret" . }}
{{- if .Values.secrets.databaseUrl }}true{{ end }}
{{- else if .Values.secrets.existingSecretKeys.databaseUrl }}true{{ end }}
{{- end }}

{{/*
The master key: the value, else the one already in the release's Secret (kept across
upgrades), else a new random one.
*/}}
{{- define "llm-gateway.masterKey" -}}
{{- if .Values.secrets.masterKey }}
{{- .Values.secrets.masterKey }}
{{- else }}
{{- $existing := lookup "v1" "Secret" .Release.Namespace (include "llm-gateway.fullname" .) }}
{{- if and $existing $existing.data (hasKey $existing.data "LITELLM_MASTER_KEY") }}
{{- index $existing.data "LITELLM_MASTER_KEY" | b64dec }}
{{- else }}
{{- printf "sk-%s" (randAlphaNum 48) }}
{{- end }}
{{- end }}
{{- end }}

{{/*
The ConfigMap holding config.yaml, and its key.
*/}}
{{- define "llm-gateway.configMapName" -}}
{{- if .Values.config.existingConfigMap }}
{{- .Values.config.existingConfigMap }}
{{- else }}
{{- include "llm-gateway.componentName" (dict "ctx" . "suffix" "config") }}
{{- end }}
{{- end }}

{{- define "llm-gateway.configMapKey" -}}
{{- if .Values.config.existingConfigMap }}{{ .Values.config.existingConfigMapKey | default "config.yaml" }}{{ else }}config.yaml{{ end }}
{{- end }}

{{/*
The path of config.yaml in the container.
*/}}
{{- define "llm-gateway.configPath" -}}
{{- printf "%s/config.yaml" (.Values.config.mountPath | trimSuffix "/") }}
{{- end }}

{{/*
Seconds: the preStop sleep, the drain timeout, and the grace period covering both.
*/}}
{{- define "llm-gateway.preStopSleepSeconds" -}}
{{- .Values.gracefulShutdown.preStopSleepSeconds | default 0 | int }}
{{- end }}

{{- define "llm-gateway.drainTimeoutSeconds" -}}
{{- $d := .Values.gracefulShutdown.drainTimeoutSeconds | int }}
{{- if le $d 0 }}{{ fail "gracefulShutdown.drainTimeoutSeconds must be a positive number of seconds" }}{{ end }}
{{- $d }}
{{- end }}

{{- define "llm-gateway.terminationGracePeriodSeconds" -}}
{{- add (include "llm-gateway.preStopSleepSeconds" . | int) (include "llm-gateway.drainTimeoutSeconds" . | int) (.Values.gracefulShutdown.marginSeconds | default 0 | int) }}
{{- end }}

{{/*
The config.yaml the chart renders: config.inline with gateway_settings.drain_timeout set
from gracefulShutdown.drainTimeoutSeconds.
*/}}
{{- define "llm-gateway.renderedConfig" -}}
{{- $cfg := deepCopy (.Values.config.inline | default dict) }}
{{- if not (kindIs "map" $cfg) }}
{{- fail "config.inline must be a map (the LiteLLM config.yaml)" }}
{{- end }}
{{- if not (hasKey $cfg "model_list") }}
{{- fail "config.inline.model_list is required (the models the gateway serves)" }}
{{- end }}
{{- $drain := include "llm-gateway.drainTimeoutSeconds" . | int }}
{{- $gs := dict }}
{{- if hasKey $cfg "gateway_settings" }}
{{- $gs = index $cfg "gateway_settings" | default dict }}
{{- end }}
{{- if and (hasKey $gs "drain_timeout") (ne (toString (index $gs "drain_timeout")) (toString $drain)) }}
{{- fail (printf "config.inline.gateway_settings.drain_timeout (%v) differs from gracefulShutdown.drainTimeoutSeconds (%d): set only gracefulShutdown.drainTimeoutSeconds" (index $gs "drain_timeout") $drain) }}
{{- end }}
{{- $_ := set $gs "drain_timeout" $drain }}
{{- $_ := set $cfg "gateway_settings" $gs }}
{{- toYaml $cfg }}
{{- end }}

{{/*
Checks of values that would otherwise give a broken release.
*/}}
{{- define "llm-gateway.validate" -}}
{{- $envRe := "^[A-Za-z_][A-Za-z0-9_]*$" }}
{{- range $name, $_ := .Values.secrets.providerKeys | default dict }}
{{- if not (regexMatch $envRe $name) }}
{{- fail (printf "secrets.providerKeys: %q is not an environment variable name" $name) }}
{{- end }}
{{- if has $name (list "LITELLM_MASTER_KEY" "DATABASE_URL" "REDIS_PASSWORD") }}
{{- fail (printf "secrets.providerKeys: set %s through secrets.masterKey / databaseUrl / redisPassword" $name) }}
{{- end }}
{{- end }}
{{- range $name := .Values.secrets.existingSecretKeys.providerKeys | default list }}
{{- if not (regexMatch $envRe $name) }}
{{- fail (printf "secrets.existingSecretKeys.providerKeys: %q is not an environment variable name" $name) }}
{{- end }}
{{- end }}
{{- if hasPrefix "rediss://" (.Values.redis.host | default "" | toString) }}
{{- fail "redis.host: give the host name without rediss:// and set redis.tls: true for TLS" }}
{{- end }}
{{- if and .Values.podDisruptionBudget.enabled (not (kindIs "invalid" .Values.podDisruptionBudget.minAvailable)) (ne (toString .Values.podDisruptionBudget.minAvailable) "") (not (kindIs "invalid" .Values.podDisruptionBudget.maxUnavailable)) (ne (toString .Values.podDisruptionBudget.maxUnavailable) "") }}
{{- fail "podDisruptionBudget: set either minAvailable or maxUnavailable, not both" }}
{{- end }}
{{- if not (has (.Values.gracefulShutdown.preStopMode | default "auto") (list "auto" "sleep" "exec")) }}
{{- fail "gracefulShutdown.preStopMode must be auto, sleep or exec" }}
{{- end }}
{{- end }}

{{/*
The preStop hook (empty when preStopSleepSeconds is 0).
*/}}
{{- define "llm-gateway.preStop" -}}
{{- $s := include "llm-gateway.preStopSleepSeconds" . | int }}
{{- if gt $s 0 }}
{{- $mode := .Values.gracefulShutdown.preStopMode | default "auto" }}
{{- if eq $mode "auto" }}
{{- $mode = ternary "sleep" "exec" (semverCompare ">=1.30.0-0" .Capabilities.KubeVersion.Version) }}
{{- end }}
{{- if eq $mode "sleep" }}
preStop:
  sleep:
    seconds: {{ $s }}
{{- else }}
preStop:
  exec:
    command: ["sleep", "{{ $s }}"]
{{- end }}
{{- end }}
{{- end }}
