{{/*
Names and labels.
*/}}
{{- define "simple-registry.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "simple-registry.fullname" -}}
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

{{- define "simple-registry.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "simple-registry.labels" -}}
helm.sh/chart: {{ include "simple-registry.chart" . }}
{{ include "simple-registry.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "simple-registry.selectorLabels" -}}
app.kubernetes.io/name: {{ include "simple-registry.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* The registry pods (the GC pods have component "gc"). */}}
{{- define "simple-registry.serverSelectorLabels" -}}
{{ include "simple-registry.selectorLabels" . }}
app.kubernetes.io/component: server
{{- end }}

{{- define "simple-registry.gcSelectorLabels" -}}
{{ include "simple-registry.selectorLabels" . }}
app.kubernetes.io/component: gc
{{- end }}

{{- define "simple-registry.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "simple-registry.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* repository@digest when a digest is set, else repository:tag (default appVersion). */}}
{{- define "simple-registry.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{- define "simple-registry.pvcName" -}}
{{- default (printf "%s-data" (include "simple-registry.fullname" .)) .Values.storage.filesystem.persistence.existingClaim }}
{{- end }}

{{/*
Facts the templates and the checks share.
*/}}
{{- define "simple-registry.multiplePods" -}}
{{- if or .Values.autoscaling.enabled (gt (int .Values.replicaCount) 1) }}true{{ end }}
{{- end }}

{{- define "simple-registry.onPVC" -}}
{{- if and (eq .Values.storage.type "filesystem") .Values.storage.filesystem.persistence.enabled }}true{{ end }}
{{- end }}

{{- define "simple-registry.rwoPVC" -}}
{{- if and (include "simple-registry.onPVC" .) (ne .Values.storage.filesystem.persistence.accessMode "ReadWriteMany") }}true{{ end }}
{{- end }}

{{- define "simple-registry.trustForwarded" -}}
{{- if kindIs "bool" .Values.registry.trustForwardedHeaders }}
{{- if .Values.registry.trustForwardedHeaders }}true{{ end }}
{{- else if .Values.ingress.enabled }}true{{ end }}
{{- end }}

{{- define "simple-registry.tokenService" -}}
{{- if .Values.registry.service }}
{{- .Values.registry.service }}
{{- else if and .Values.ingress.enabled .Values.ingress.hosts }}
{{- first .Values.ingress.hosts }}
{{- end }}
{{- end }}

{{/*
A value the chart generates when none is given: the one already in the release's Secret
(so upgrades keep it), else a new random one, remembered for the rest of this render so
that the Secret and its checksum annotation agree. Call with (list $ "key" length).
*/}}
{{- define "simple-registry.generated" -}}
{{- $root := index . 0 }}
{{- $key := index . 1 }}
{{- $length := index . 2 }}
{{- if not (hasKey $root.Values "__generated") }}
{{- $_ := set $root.Values "__generated" dict }}
{{- end }}
{{- $memo := get $root.Values "__generated" }}
{{- if not (hasKey $memo $key) }}
{{- $existing := lookup "v1" "Secret" $root.Release.Namespace (include "simple-registry.fullname" $root) }}
{{- $value := "" }}
{{- if and $existing $existing.data (hasKey $existing.data $key) }}
{{- $value = index $existing.data $key | b64dec }}
{{- else }}
{{- $value = randAlphaNum $length }}
{{- end }}
{{- $_ := set $memo $key $value }}
{{- end }}
{{- get $memo $key }}
{{- end }}

{{/* What the admin password and the token signing come from: value, existing, generated. */}}
{{- define "simple-registry.adminPasswordSource" -}}
{{- if not .Values.auth.admin.enabled }}none
{{- else if .Values.auth.admin.existingSecret.name }}existing
{{- else if .Values.auth.admin.password }}value
{{- else }}generated
{{- end }}
{{- end }}

{{- define "simple-registry.tokenSigningSource" -}}
{{- if .Values.auth.tokenKey.existingSecret.name }}existingKey
{{- else if .Values.auth.tokenKey.value }}key
{{- else if .Values.auth.tokenSecret.existingSecret.name }}existingSecret
{{- else if .Values.auth.tokenSecret.value }}secret
{{- else }}generated
{{- end }}
{{- end }}

{{/* Percent-encodes a URL's user information (urlquery writes a space as "+"). */}}
{{- define "simple-registry.urlEncode" -}}
{{- urlquery . | replace "+" "%20" }}
{{- end }}

{{/* "scheme://[user]:PASSWORD@rest" from redis.url. */}}
{{- define "simple-registry.redisUrlWith" -}}
{{- $root := index . 0 }}
{{- $password := index . 1 }}
{{- $parts := splitn "://" 2 $root.Values.redis.url }}
{{- printf "%s://%s:%s@%s" $parts._0 (include "simple-registry.urlEncode" $root.Values.redis.username) $password $parts._1 }}
{{- end }}

{{/* Mount paths. */}}
{{- define "simple-registry.configDir" -}}/etc/simple-registry/config{{- end }}
{{- define "simple-registry.manifestsDir" -}}/etc/simple-registry/manifests{{- end }}
{{- define "simple-registry.extraManifestsDir" -}}/etc/simple-registry/extra-manifests{{- end }}
{{- define "simple-registry.secretsDir" -}}/etc/simple-registry/secrets{{- end }}
{{- define "simple-registry.dataDir" -}}/data{{- end }}

{{- define "simple-registry.hasSecretManifests" -}}
{{- if or .Values.auth.users .Values.auth.tokens }}true{{ end }}
{{- end }}

{{/*
Every contradiction in the values stops the render with a message saying what to change.
*/}}
{{- define "simple-registry.validate" -}}
{{- $v := .Values }}
{{- $multiple := include "simple-registry.multiplePods" . }}
{{- $scaling := ternary "autoscaling.enabled" (printf "replicaCount %d" (int $v.replicaCount)) $v.autoscaling.enabled }}
{{- if eq $v.storage.type "s3" }}
{{- if not $v.storage.s3.bucket }}
{{- fail "storage.type is s3 but storage.s3.bucket is empty: name the bucket" }}
{{- end }}
{{- if and $multiple (not $v.redis.url) }}
{{- fail (printf "S3 storage with %s needs Redis for upload sessions and locks shared by the pods: set redis.url (or run one replica)" $scaling) }}
{{- end }}
{{- if or (and $v.storage.s3.accessKeyId (not $v.storage.s3.secretAccessKey)) (and $v.storage.s3.secretAccessKey (not $v.storage.s3.accessKeyId)) }}
{{- fail "storage.s3.accessKeyId and storage.s3.secretAccessKey go together" }}
{{- end }}
{{- if and $v.storage.s3.existingSecret.name (or $v.storage.s3.accessKeyId $v.storage.s3.secretAccessKey) }}
{{- fail "give the S3 credentials either as storage.s3.accessKeyId/secretAccessKey or in storage.s3.existingSecret, not both" }}
{{- end }}
{{- else }}
{{- if $multiple }}
{{- if not $v.storage.filesystem.persistence.enabled }}
{{- fail (printf "filesystem storage on an emptyDir cannot have %s: each pod would have its own data; enable storage.filesystem.persistence with accessMode ReadWriteMany, or use storage.type s3" $scaling) }}
{{- end }}
{{- if ne $v.storage.filesystem.persistence.accessMode "ReadWriteMany" }}
{{- fail (printf "filesystem storage on a %s volume allows exactly one pod, but %s: use accessMode ReadWriteMany (with Redis), or storage.type s3 with Redis, or replicaCount 1 without autoscaling" $v.storage.filesystem.persistence.accessMode $scaling) }}
{{- end }}
{{- if not $v.redis.url }}
{{- fail (printf "several pods on one ReadWriteMany volume (%s) need Redis for upload sessions and locks: set redis.url" $scaling) }}
{{- end }}
{{- end }}
{{- end }}
{{- if $v.autoscaling.enabled }}
{{- if gt (int $v.autoscaling.minReplicas) (int $v.autoscaling.maxReplicas) }}
{{- fail (printf "autoscaling.minReplicas (%d) is above autoscaling.maxReplicas (%d)" (int $v.autoscaling.minReplicas) (int $v.autoscaling.maxReplicas)) }}
{{- end }}
{{- if not (and $v.resources.requests $v.resources.requests.cpu) }}
{{- fail "autoscaling on CPU needs resources.requests.cpu: the target is a percentage of it" }}
{{- end }}
{{- end }}
{{- if $v.redis.url }}
{{- if not (regexMatch "^(redis|rediss|redis\\+sentinel)://" $v.redis.url) }}
{{- fail "redis.url must start with redis://, rediss:// or redis+sentinel://" }}
{{- end }}
{{- if regexMatch "^[a-z+]+://[^/]*@" $v.redis.url }}
{{- fail "redis.url must not hold credentials (they would be visible in the pod spec): give redis.password or redis.existingSecret, and redis.username" }}
{{- end }}
{{- end }}
{{- if and $v.redis.password $v.redis.existingSecret.name }}
{{- fail "give the Redis password either as redis.password or in redis.existingSecret, not both" }}
{{- end }}
{{- if and (or $v.redis.password $v.redis.existingSecret.name) (not $v.redis.url) }}
{{- fail "a Redis password is set but redis.url is empty" }}
{{- end }}
{{- if and $v.auth.admin.password $v.auth.admin.existingSecret.name }}
{{- fail "give the admin password either as auth.admin.password or in auth.admin.existingSecret, not both" }}
{{- end }}
{{- if and (not $v.auth.admin.enabled) (not $v.auth.users) (not $v.auth.existingManifestsSecret) }}
{{- fail "nobody could log in: keep auth.admin.enabled, or define auth.users (or auth.existingManifestsSecret)" }}
{{- end }}
{{- if and (or $v.auth.tokenKey.value $v.auth.tokenKey.existingSecret.name) (or $v.auth.tokenSecret.value $v.auth.tokenSecret.existingSecret.name) }}
{{- fail "tokens are signed either with auth.tokenSecret (HS256) or with auth.tokenKey (RS256/ES256), not both" }}
{{- end }}
{{- if and $v.auth.tokenKey.value $v.auth.tokenKey.existingSecret.name }}
{{- fail "give the token key either as auth.tokenKey.value or in auth.tokenKey.existingSecret, not both" }}
{{- end }}
{{- if and $v.auth.tokenSecret.value $v.auth.tokenSecret.existingSecret.name }}
{{- fail "give the token secret either as auth.tokenSecret.value or in auth.tokenSecret.existingSecret, not both" }}
{{- end }}
{{- $cfg := $v.config.configuration }}
{{- $web := $cfg.web | default dict }}
{{- $s3 := (($cfg.storage | default dict).s3) | default dict }}
{{- range $key := list "tokenSecret" "tokenSecretFile" "tokenSecretEnv" }}
{{- if hasKey $web $key }}
{{- fail (printf "config.configuration.web.%s: the token secret is set with auth.tokenSecret (it would land in a ConfigMap)" $key) }}
{{- end }}
{{- end }}
{{- if hasKey ($cfg.redis | default dict) "url" }}
{{- fail "config.configuration.redis.url: set redis.url and redis.password instead (the URL may hold the password, and would land in a ConfigMap)" }}
{{- end }}
{{- range $key := list "accessKey" "secretKey" }}
{{- if hasKey $s3 $key }}
{{- fail (printf "config.configuration.storage.s3.%s: set storage.s3.accessKeyId/secretAccessKey or storage.s3.existingSecret instead (it would land in a ConfigMap)" $key) }}
{{- end }}
{{- end }}
{{- range $v.config.pullThroughCaches }}
{{- $up := .upstream | default dict }}
{{- if and $up.password ($up.existingSecret | default dict).name }}
{{- fail (printf "config.pullThroughCaches %s: give the upstream password either as upstream.password or in upstream.existingSecret, not both" .name) }}
{{- end }}
{{- if or (hasKey $up "passwordFile") (hasKey $up "passwordEnv") }}
{{- fail (printf "config.pullThroughCaches %s: the chart mounts the upstream password itself; give upstream.password or upstream.existingSecret instead of passwordFile/passwordEnv" .name) }}
{{- end }}
{{- end }}
{{- if le (int $v.terminationGracePeriodSeconds) (add 30 (int $v.preStopSleepSeconds) | int) }}
{{- fail (printf "terminationGracePeriodSeconds (%d) must be above preStopSleepSeconds (%d) + 30: serve waits up to 30 s for its workers after SIGTERM" (int $v.terminationGracePeriodSeconds) (int $v.preStopSleepSeconds)) }}
{{- end }}
{{- if and $v.ingress.enabled (not $v.ingress.hosts) }}
{{- fail "ingress.enabled needs at least one host in ingress.hosts" }}
{{- end }}
{{- if and $v.metrics.serviceMonitor.enabled (not $v.metrics.enabled) }}
{{- fail "metrics.serviceMonitor.enabled needs metrics.enabled (the separate metrics port)" }}
{{- end }}
{{- end }}
