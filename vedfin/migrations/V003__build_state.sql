-- Which generated dataset the dbt models were last built from: when `vedfin seed`
-- replaces the data (ids start again), incremental models must be rebuilt in full.
create table vedfin_meta.build_state (
    id              boolean primary key default true check (id),
    fresh_run_id    bigint,
    built_at        timestamptz not null default now()
);
