"""Pure OCI rules: digests, names, media types, manifests and error codes. No I/O here."""
