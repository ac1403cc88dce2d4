"""The code location by integration: raw (the platform's tables, the generator), dbt
(every model, tests as checks), leaderboard (the Redis snapshot and its sensor)."""
