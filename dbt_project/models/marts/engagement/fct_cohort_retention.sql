-- depends_on: {{ ref('int_events_valid') }}
{{
    config(
        materialized='incremental',
        unique_key=['cohort_week', 'week_number'],
        incremental_strategy='delete+insert',
        on_schema_change='append_new_columns',
        indexes=[{'columns': ['cohort_week', 'week_number'], 'unique': true}],
    )
}}
{#-
    One row per (signup cohort week, week number) for every cohort with at least one user,
    week_number 0, 1, ... through the week that contains as_of_date.
    retained_users: cohort users active in week cohort_week + 7 * week_number;
    retained_users_unbounded: cohort users active in that week or any later one up to
    as_of_date (their last active week is that week or later).
    last_ingested_at: the latest ingested_at of the valid events behind retained_users.

    Incremental runs read the user-days of the recent weeks only: from the week of the
    last activity week already here (lookback_days earlier), or from the week of the
    earliest date of an event ingested since the previous run when that is earlier (the
    arrivals mark every incremental model uses). No user-day of an earlier week changed, so
    those weeks keep their retained_users from the previous run. retained_users_unbounded
    needs every user's last active week: one index lookup per user into int_user_days
    (user_id, activity_date), instead of reading every user-day. Every cell is written
    again (a few hundred rows: cohort sizes, is_complete and the unbounded counts move with
    the new as-of date).
    A table built before this model was incremental has no last_ingested_at: the first
    run on it computes every cell as a full refresh does, adds the column and replaces
    every row, and runs after it are incremental (no --full-refresh needed to upgrade).
-#}

{%- set incremental = is_incremental() and 'last_ingested_at' in (
    adapter.get_columns_in_relation(this) | map(attribute='name') | list
) %}

with users as (
    select user_id, cohort_week from {{ ref('int_users_as_of') }}
),

{% if incremental %}
{%- set window_start = incremental_window_start_date("select max(activity_week) from " ~ this) %}
{%- set arrivals_start = constant_of(
    "select min(local_date) from " ~ ref('int_events_valid') ~ " where ingested_at >= "
    ~ arrived_after("select max(last_ingested_at) from " ~ this),
    'date'
) %}
{%- set first_week = week_start("least(" ~ window_start ~ ", " ~ arrivals_start ~ ")") %}
retained as (
    select
        users.cohort_week,
        user_days.activity_week,
        count(distinct user_days.user_id) as retained_users,
        max(user_days.last_ingested_at) as last_ingested_at
    from {{ ref('int_user_days') }} as user_days
    inner join users on users.user_id = user_days.user_id
    where user_days.activity_date >= {{ first_week }}
        and user_days.activity_date <= {{ as_of_date() }}
    group by users.cohort_week, user_days.activity_week
    union all
    select cohort_week, activity_week, retained_users, last_ingested_at
    from {{ this }}
    where activity_week < {{ first_week }}
),

last_week as (
    select users.user_id, {{ week_start('last_day.activity_date') }} as last_active_week
    from users
    -- noqa: disable=LT02
    cross join lateral (
        select user_days.activity_date
        from {{ ref('int_user_days') }} as user_days
        where user_days.user_id = users.user_id
            and user_days.activity_date <= {{ as_of_date() }}
        order by user_days.activity_date desc
        limit 1  -- one backward index lookup per user, never a read of every user-day
    ) as last_day
    -- noqa: enable=LT02
),
{% else %}
user_weeks as (
    select user_id, activity_week, max(last_ingested_at) as last_ingested_at
    from {{ ref('int_user_days') }}
    where activity_date <= {{ as_of_date() }}
    group by user_id, activity_week
),

retained as (
    select
        users.cohort_week,
        user_weeks.activity_week,
        count(*) as retained_users,
        max(user_weeks.last_ingested_at) as last_ingested_at
    from users
    inner join user_weeks on user_weeks.user_id = users.user_id
    group by users.cohort_week, user_weeks.activity_week
),

last_week as (
    select user_id, max(activity_week) as last_active_week
    from user_weeks
    group by user_id
),
{% endif %}

cohorts as (
    select cohort_week, count(*) as cohort_size
    from users
    group by cohort_week
),

grid as (
    select
        cohorts.cohort_week,
        cohorts.cohort_size,
        cast(week_number as integer) as week_number,
        cohorts.cohort_week + 7 * cast(week_number as integer) as activity_week
    from cohorts
    cross join lateral generate_series(
        0, ({{ week_start(as_of_date()) }} - cohorts.cohort_week) / 7
    ) as week_number
),

{#- Users counted once per (cohort, last active week), then summed from the cohort's last
    week down to each cell's week (a running sum over the grid): one pass over a few
    hundred cells, where pairing every user with every week of their cohort's grid would
    make millions of rows, and pairing every cell with every later week a number that
    grows with the square of the history. -#}
last_weeks as (
    select users.cohort_week, last_week.last_active_week, count(*) as users_count
    from users
    inner join last_week on last_week.user_id = users.user_id
    group by users.cohort_week, last_week.last_active_week
),

retained_unbounded as (
    select
        grid.cohort_week,
        grid.week_number,
        sum(coalesce(last_weeks.users_count, 0)) over (
            partition by grid.cohort_week
            order by grid.week_number desc
            rows between unbounded preceding and current row
        ) as retained_users_unbounded
    from grid
    left join last_weeks
        on last_weeks.cohort_week = grid.cohort_week
            and last_weeks.last_active_week = grid.activity_week
)

select
    grid.cohort_week,
    grid.week_number,
    grid.activity_week,
    cast(grid.cohort_size as integer) as cohort_size,
    cast(coalesce(retained.retained_users, 0) as integer) as retained_users,
    {{ safe_ratio('coalesce(retained.retained_users, 0)', 'grid.cohort_size') }} as retention_rate,
    cast(coalesce(retained_unbounded.retained_users_unbounded, 0) as integer) as retained_users_unbounded,
    {{ safe_ratio('coalesce(retained_unbounded.retained_users_unbounded, 0)', 'grid.cohort_size') }}
        as retention_rate_unbounded,
    grid.activity_week + 6 < {{ as_of_date() }} as is_complete,
    retained.last_ingested_at
from grid
left join retained
    on retained.cohort_week = grid.cohort_week and retained.activity_week = grid.activity_week
left join retained_unbounded
    on retained_unbounded.cohort_week = grid.cohort_week
        and retained_unbounded.week_number = grid.week_number
