"""The Redis leaderboard snapshot, its jobs and the five-minute sensor."""
