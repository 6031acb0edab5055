"""The HTTP edge of `pdp serve --http-listen`: pdp.v1 as JSON, AuthZEN 1.0, forward-auth, health.

Same process, bundle store, limits, decision log and metrics as the gRPC port.
`wire` is the HTTP/1.1 server (with `reading`, `connection`, `writing`), `app` the routes,
`v1json` / `authzen` / `forward` the three ways in, `server` the listener and its TLS
(`pdp serve` options: `pdp/cli/http_flags.py`).
"""
