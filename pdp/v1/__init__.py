"""Code generated from protos/pdp/v1/authorizer.proto by `make proto`; never edited by hand."""
