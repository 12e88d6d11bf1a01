{{/*
The registry's YAML manifests (docs/configuration.md). Kinds that hold nothing secret go
into the ConfigMap; Users and Tokens (password and token hashes) into the Secret.
*/}}

{{/* A list of manifests of one kind: (list "Kind" items). Each item is {name, ...spec}. */}}
{{- define "simple-registry.manifestList" -}}
{{- $kind := index . 0 }}
{{- range $i, $item := index . 1 }}
{{- if $i }}
---
{{- end }}
apiVersion: simple-registry.dev/v1
kind: {{ $kind }}
metadata:
  name: {{ required (printf "every %s needs a name" $kind) $item.name | quote }}
spec:
  {{- toYaml (omit $item "name") | nindent 2 }}
{{- end }}
{{- end }}

{{/* The Configuration manifest: what the values say, then config.configuration over it. */}}
{{- define "simple-registry.configurationSpec" -}}
{{- $v := .Values }}
{{- $web := dict "tokenTimeout" (int $v.registry.tokenTimeout) "bodyTimeout" $v.registry.bodyTimeout "trustForwardedHeaders" (eq (include "simple-registry.trustForwarded" .) "true") "ui" $v.registry.ui }}
{{- with include "simple-registry.tokenService" . }}
{{- $_ := set $web "service" . }}
{{- end }}
{{- $spec := dict "dataDir" (include "simple-registry.dataDir" .) "web" $web }}
{{- if eq $v.storage.type "s3" }}
{{- $s3 := dict "bucket" $v.storage.s3.bucket "pathStyle" $v.storage.s3.pathStyle "redirect" $v.storage.s3.redirect }}
{{- range $key := list "region" "endpoint" "prefix" "sse" "sseKmsKeyId" "storageClass" "publicEndpoint" }}
{{- with index $v.storage.s3 $key }}
{{- $_ := set $s3 $key . }}
{{- end }}
{{- end }}
{{- $_ := set $spec "storage" (dict "s3" $s3) }}
{{- end }}
{{- toYaml (mustMergeOverwrite $spec (deepCopy $v.config.configuration)) }}
{{- end }}

{{- define "simple-registry.pullThroughCacheItems" -}}
{{- $items := list }}
{{- range $i, $cache := .Values.config.pullThroughCaches }}
{{- $up := omit ($cache.upstream | default dict) "password" "existingSecret" }}
{{- if or ($cache.upstream | default dict).password ((($cache.upstream | default dict).existingSecret | default dict).name) }}
{{- $_ := set $up "passwordFile" (printf "%s/upstream-%d-password" (include "simple-registry.secretsDir" $) $i) }}
{{- end }}
{{- $items = append $items (merge (dict "upstream" $up) (omit $cache "upstream")) }}
{{- end }}
{{- toYaml (dict "items" $items) }}
{{- end }}
