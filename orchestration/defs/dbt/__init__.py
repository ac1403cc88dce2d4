"""Every dbt model as an asset, dbt tests as checks, one build at a time."""
