"""Tests of identity: JWTs, key sets, mTLS peers, API keys, claims to principals, and the
`identity:` section of routes.yaml."""
