-- Bookkeeping of the synthetic-data generator (seeds_gen), outside the
-- platform's own schema: what each run generated, and the per-user model
-- parameters an append run needs to continue the same story.

create table vedfin_meta.seed_runs (
    run_id        bigint generated always as identity primary key,
    mode          text not null check (mode in ('fresh', 'append')),
    spec          jsonb not null,
    end_date      date not null,
    cutoff_at     timestamptz not null,
    row_counts    jsonb not null,
    seconds       double precision not null,
    finished_at   timestamptz not null default now()
);

create table vedfin_meta.seed_users (
    user_id          bigint primary key,
    signup_at        timestamptz not null,
    persona          integer not null,
    engagement       double precision not null,
    active_until     timestamptz not null,
    p_active         double precision not null,
    learner          boolean not null,
    max_courses      integer not null,
    device           integer not null,
    group_id         bigint,
    joined_at        timestamptz,
    streak_last_day  date,
    streak_run       integer not null default 0,
    streak_longest   integer not null default 0
);
