"""What every layer above shares (README, "Development"); imports only
`pipelines.segments` and `pipelines.errors` (pyproject.toml's import-linter contract)."""
