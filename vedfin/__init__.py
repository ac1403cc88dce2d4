"""vedfin: the core every other package builds on: settings and connections, errors, the
reporting calendar, the embedded servers, migrations, dbt invocation, the raw tables'
observation and the Redis leaderboard. It imports no other package of the project."""

__version__ = "0.1.0"
