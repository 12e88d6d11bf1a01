{{/*
What the registry and the GC pods share: the configuration, the secrets, the volumes.
*/}}

{{/* Flags common to serve and gc: paths only, never a secret. */}}
{{- define "simple-registry.commonArgs" -}}
- -datadir
- {{ include "simple-registry.dataDir" . }}
- -cfgdir
- {{ include "simple-registry.configDir" . }}
{{- if include "simple-registry.hasSecretManifests" . }}
- -cfgdir
- {{ include "simple-registry.manifestsDir" . }}
{{- end }}
{{- if .Values.auth.existingManifestsSecret }}
- -cfgdir
- {{ include "simple-registry.extraManifestsDir" . }}
{{- end }}
- -loglevel
- {{ .Values.registry.logLevel }}
- -logformat
- {{ .Values.registry.logFormat }}
{{- end }}

{{/* Environment: S3 credentials and the Redis URL, from Secrets only. */}}
{{- define "simple-registry.env" -}}
{{- $v := .Values }}
{{- $fullname := include "simple-registry.fullname" . }}
{{- if eq $v.storage.type "s3" }}
{{- if $v.storage.s3.existingSecret.name }}
- name: AWS_ACCESS_KEY_ID
  valueFrom:
    secretKeyRef:
      name: {{ $v.storage.s3.existingSecret.name }}
      key: {{ $v.storage.s3.existingSecret.accessKeyIdKey }}
- name: AWS_SECRET_ACCESS_KEY
  valueFrom:
    secretKeyRef:
      name: {{ $v.storage.s3.existingSecret.name }}
      key: {{ $v.storage.s3.existingSecret.secretAccessKeyKey }}
{{- else if $v.storage.s3.accessKeyId }}
- name: AWS_ACCESS_KEY_ID
  valueFrom:
    secretKeyRef:
      name: {{ $fullname }}
      key: s3-access-key-id
- name: AWS_SECRET_ACCESS_KEY
  valueFrom:
    secretKeyRef:
      name: {{ $fullname }}
      key: s3-secret-access-key
{{- end }}
{{- end }}
{{- if $v.redis.url }}
{{- if $v.redis.existingSecret.name }}
- name: SIMPLE_REGISTRY_REDIS_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ $v.redis.existingSecret.name }}
      key: {{ $v.redis.existingSecret.passwordKey }}
- name: SIMPLE_REGISTRY_REDISURL
  value: {{ include "simple-registry.redisUrlWith" (list . "$(SIMPLE_REGISTRY_REDIS_PASSWORD)") | quote }}
{{- else if $v.redis.password }}
- name: SIMPLE_REGISTRY_REDISURL
  valueFrom:
    secretKeyRef:
      name: {{ $fullname }}
      key: redis-url
{{- else }}
- name: SIMPLE_REGISTRY_REDISURL
  value: {{ $v.redis.url | quote }}
{{- end }}
{{- end }}
{{- with $v.registry.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* The projected sources of the secrets folder: each file from exactly one Secret. */}}
{{- define "simple-registry.secretSources" -}}
{{- $v := .Values }}
{{- $fullname := include "simple-registry.fullname" . }}
{{- $own := list }}
{{- $sources := list }}
{{- $admin := include "simple-registry.adminPasswordSource" . }}
{{- if has $admin (list "value" "generated") }}
{{- $own = append $own (dict "key" "admin-password" "path" "admin-password") }}
{{- else if eq $admin "existing" }}
{{- $sources = append $sources (dict "secret" (dict "name" $v.auth.admin.existingSecret.name "items" (list (dict "key" $v.auth.admin.existingSecret.key "path" "admin-password")))) }}
{{- end }}
{{- $signing := include "simple-registry.tokenSigningSource" . }}
{{- if has $signing (list "secret" "generated") }}
{{- $own = append $own (dict "key" "token-secret" "path" "token-secret") }}
{{- else if eq $signing "key" }}
{{- $own = append $own (dict "key" "token-key.pem" "path" "token-key.pem") }}
{{- else if eq $signing "existingSecret" }}
{{- $sources = append $sources (dict "secret" (dict "name" $v.auth.tokenSecret.existingSecret.name "items" (list (dict "key" $v.auth.tokenSecret.existingSecret.key "path" "token-secret")))) }}
{{- else if eq $signing "existingKey" }}
{{- $sources = append $sources (dict "secret" (dict "name" $v.auth.tokenKey.existingSecret.name "items" (list (dict "key" $v.auth.tokenKey.existingSecret.key "path" "token-key.pem")))) }}
{{- end }}
{{- range $i, $cache := $v.config.pullThroughCaches }}
{{- $up := $cache.upstream | default dict }}
{{- $path := printf "upstream-%d-password" $i }}
{{- if $up.password }}
{{- $own = append $own (dict "key" $path "path" $path) }}
{{- else if ($up.existingSecret | default dict).name }}
{{- $sources = append $sources (dict "secret" (dict "name" $up.existingSecret.name "items" (list (dict "key" (required (printf "config.pullThroughCaches %s: upstream.existingSecret.key is required" $cache.name) $up.existingSecret.key) "path" $path)))) }}
{{- end }}
{{- end }}
{{- if $own }}
{{- $sources = prepend $sources (dict "secret" (dict "name" $fullname "items" $own)) }}
{{- end }}
{{- toYaml (dict "sources" $sources) }}
{{- end }}

{{- define "simple-registry.volumes" -}}
{{- $v := .Values -}}
- name: tmp
  emptyDir:
    sizeLimit: {{ $v.tmpSizeLimit }}
- name: data
  {{- if include "simple-registry.onPVC" . }}
  persistentVolumeClaim:
    claimName: {{ include "simple-registry.pvcName" . }}
  {{- else }}
  emptyDir: {}
  {{- end }}
- name: config
  configMap:
    name: {{ include "simple-registry.fullname" . }}
{{- if include "simple-registry.hasSecretManifests" . }}
- name: manifests
  secret:
    secretName: {{ include "simple-registry.fullname" . }}
    defaultMode: 0440
    items:
      {{- if $v.auth.users }}
      - key: users.yaml
        path: users.yaml
      {{- end }}
      {{- if $v.auth.tokens }}
      - key: tokens.yaml
        path: tokens.yaml
      {{- end }}
{{- end }}
{{- if $v.auth.existingManifestsSecret }}
- name: extra-manifests
  secret:
    secretName: {{ $v.auth.existingManifestsSecret }}
    defaultMode: 0440
{{- end }}
{{- with (include "simple-registry.secretSources" . | fromYaml).sources }}
- name: secrets
  projected:
    defaultMode: 0440
    sources:
      {{- toYaml . | nindent 6 }}
{{- end }}
{{- end }}

{{- define "simple-registry.volumeMounts" -}}
- name: tmp
  mountPath: /tmp
- name: data
  mountPath: {{ include "simple-registry.dataDir" . }}
- name: config
  mountPath: {{ include "simple-registry.configDir" . }}
  readOnly: true
{{- if include "simple-registry.hasSecretManifests" . }}
- name: manifests
  mountPath: {{ include "simple-registry.manifestsDir" . }}
  readOnly: true
{{- end }}
{{- if .Values.auth.existingManifestsSecret }}
- name: extra-manifests
  mountPath: {{ include "simple-registry.extraManifestsDir" . }}
  readOnly: true
{{- end }}
{{- if (include "simple-registry.secretSources" . | fromYaml).sources }}
- name: secrets
  mountPath: {{ include "simple-registry.secretsDir" . }}
  readOnly: true
{{- end }}
{{- end }}

{{/* Pod annotations that roll the pods when the configuration or the Secret changes. */}}
{{- define "simple-registry.checksums" -}}
checksum/config: {{ include (print .Template.BasePath "/configmap.yaml") . | sha256sum }}
checksum/secret: {{ include (print .Template.BasePath "/secret.yaml") . | sha256sum }}
{{- end }}
