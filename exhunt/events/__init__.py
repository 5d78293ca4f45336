"""The normalized events store: Arrow schemas, batching writers and DuckDB views over Parquet."""
