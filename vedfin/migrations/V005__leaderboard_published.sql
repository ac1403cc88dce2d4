-- What each Redis leaderboard snapshot holds, kept beside the marts so that the next
-- publish can send Redis only the entries that changed (vedfin/leaderboard.py).
-- target: the Redis server, database and key prefix ("host:port/db prefix").
create table vedfin_meta.leaderboard_published (
    target          text primary key,
    snapshot_id     text not null,
    version         bigint not null,
    published_at    timestamptz not null default now()
);

create table vedfin_meta.leaderboard_published_rows (
    target          text not null,
    user_id         bigint not null,
    total_points    integer not null,
    points_7d       integer not null,
    display_name    text,
    rank            integer not null,
    primary key (target, user_id)
);
