"""The web UI: a static browser app (`static/`) served by the API process when enabled
(`-ui`). It talks to the registry through the same HTTP API and token service as any client,
so it can show and do no more than its user may."""
