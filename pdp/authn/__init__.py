"""Identity for the gateway: JWTs, mTLS peers and API keys, verified and mapped to principals."""
