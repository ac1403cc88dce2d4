-- The as-of date of the last recorded build: incremental models only move forward in
-- time, so a build for an earlier as-of date is rebuilt in full.
alter table vedfin_meta.build_state add column as_of_date date;
