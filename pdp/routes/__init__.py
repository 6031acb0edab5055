"""The routes.yaml language: compiled from explicit inputs (text, files, schema, known uids)."""
