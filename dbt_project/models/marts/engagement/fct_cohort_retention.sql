{{ config(indexes=[{'columns': ['cohort_week', 'week_number'], 'unique': true}]) }}
{#-
    One row per (signup cohort week, week number) for every cohort with at least one user,
    week_number 0, 1, ... through the week that contains as_of_date.
    retained_users: cohort users active in week cohort_week + 7 * week_number;
    retained_users_unbounded: cohort users active in that week or any later one up to
    as_of_date (their last active week is that week or later).
-#}

with users as (
    select user_id, cohort_week from {{ ref('int_users_as_of') }}
),

user_weeks as (
    select distinct user_id, activity_week from {{ ref('int_user_days') }}
    where activity_date <= {{ as_of_date() }}
),

last_week as (
    select user_id, max(activity_week) as last_active_week
    from user_weeks
    group by user_id
),

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

retained as (
    select users.cohort_week, user_weeks.activity_week, count(*) as retained_users
    from users
    inner join user_weeks on user_weeks.user_id = users.user_id
    group by users.cohort_week, user_weeks.activity_week
),

{#- Users counted once per (cohort, last active week), then summed over the last weeks at or
    after each cell's week: a few hundred groups, where pairing every user with every
    week of their cohort's grid would make millions of rows. -#}
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
        cast(sum(last_weeks.users_count) as bigint) as retained_users_unbounded
    from grid
    inner join last_weeks
        on last_weeks.cohort_week = grid.cohort_week
            and last_weeks.last_active_week >= grid.activity_week
    group by grid.cohort_week, grid.week_number
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
    grid.activity_week + 6 < {{ as_of_date() }} as is_complete
from grid
left join retained
    on retained.cohort_week = grid.cohort_week and retained.activity_week = grid.activity_week
left join retained_unbounded
    on retained_unbounded.cohort_week = grid.cohort_week
        and retained_unbounded.week_number = grid.week_number
