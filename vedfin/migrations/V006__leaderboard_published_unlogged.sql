-- The record of what each Redis leaderboard snapshot holds is a cache of Redis's own
-- state: it need not survive a crash, so it is not written to the WAL (a whole snapshot
-- rewrites up to every row of it: 182,000 at 300,000 users). After a crash, or on a
-- standby promoted in its place, PostgreSQL empties both tables together; the next
-- publish then finds no record and sends a whole snapshot, as it does for a first one.
alter table vedfin_meta.leaderboard_published_rows set unlogged;
alter table vedfin_meta.leaderboard_published set unlogged;
