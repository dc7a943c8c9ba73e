"""Landing files -> typed Parquet lake, with ledger, quarantine and rejection (no Dagster here)."""
