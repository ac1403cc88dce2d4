-- depends_on: {{ ref('int_events_valid') }}
{{
    config(
        materialized='incremental',
        unique_key='activity_date',
        incremental_strategy='delete+insert',
        on_schema_change='fail',
        indexes=[{'columns': ['activity_date'], 'unique': true}],
    )
}}
{#-
    One row per local date from the first signup's local date through as_of_date, every
    date present. A user is active on a date with at least one valid event that date.
    wau counts distinct users active in [d-6, d], mau in [d-29, d]: each active day a of a
    user covers the dates a .. min(next active day - 1, a + 6 or 29), so coverage is a
    running sum of +1/-1 marks (one pass, no date x user join).
    last_ingested_at: the latest ingested_at of the date's valid events.
    Incremental runs recompute the dates from the last one already here (lookback_days
    earlier; its is_complete flips, and when runs were missed every date in between is
    filled), or from the earliest date of an event ingested since the previous run when
    that is earlier (a late event changes wau and mau of the 29 dates after it too).
-#}

with bounds as (
    select
        {% if is_incremental() %}
        greatest(
            min(signup_date),
            least(
                {{ incremental_window_start_date("select max(activity_date) from " ~ this) }},
                {{ constant_of(
                    "select min(local_date) from " ~ ref('int_events_valid')
                    ~ " where ingested_at >= " ~ arrived_after("select max(last_ingested_at) from " ~ this),
                    'date'
                ) }}
            )
        ) as first_date,
        {% else %}
        min(signup_date) as first_date,
        {% endif %}
        {{ as_of_date() }} as last_date
    from {{ ref('int_users_as_of') }}
),

spine as (
    select cast(day as date) as activity_date
    from bounds, generate_series(bounds.first_date, bounds.last_date, interval '1 day') as day
),

user_days as (
    select user_days.user_id, user_days.activity_date, user_days.last_ingested_at
    from {{ ref('int_user_days') }} as user_days, bounds
    where user_days.activity_date >= bounds.first_date - 29
        and user_days.activity_date <= bounds.last_date
),

with_next as (
    select
        user_id,
        activity_date,
        lead(activity_date) over (partition by user_id order by activity_date) as next_date
    from user_days
),

marks as (
    select activity_date as mark_date, 1 as wau_delta, 1 as mau_delta from with_next
    union all
    select
        least(coalesce(next_date, activity_date + 7), activity_date + 7) as mark_date,
        -1 as wau_delta,
        0 as mau_delta
    from with_next
    union all
    select
        least(coalesce(next_date, activity_date + 30), activity_date + 30) as mark_date,
        0 as wau_delta,
        -1 as mau_delta
    from with_next
),

marks_by_date as (
    select mark_date, sum(wau_delta) as wau_delta, sum(mau_delta) as mau_delta
    from marks
    group by mark_date
),

running as (
    select
        dates.activity_date,
        sum(coalesce(marks_by_date.wau_delta, 0)) over by_date as wau,
        sum(coalesce(marks_by_date.mau_delta, 0)) over by_date as mau
    from (
        select cast(day as date) as activity_date
        from bounds, generate_series(bounds.first_date - 29, bounds.last_date, interval '1 day') as day
    ) as dates
    left join marks_by_date on marks_by_date.mark_date = dates.activity_date
    window by_date as (order by dates.activity_date rows between unbounded preceding and current row)
),

dau as (
    select activity_date, count(*) as dau, max(last_ingested_at) as last_ingested_at
    from user_days
    group by activity_date
),

signups as (
    select signup_date, count(*) as new_users
    from {{ ref('int_users_as_of') }}
    group by signup_date
)

select
    spine.activity_date,
    cast(coalesce(dau.dau, 0) as integer) as dau,
    cast(running.wau as integer) as wau,
    cast(running.mau as integer) as mau,
    {{ safe_ratio('coalesce(dau.dau, 0)', 'running.mau') }} as stickiness,
    cast(coalesce(signups.new_users, 0) as integer) as new_users,
    spine.activity_date < {{ as_of_date() }} as is_complete,
    dau.last_ingested_at
from spine
inner join running on running.activity_date = spine.activity_date
left join dau on dau.activity_date = spine.activity_date
left join signups on signups.signup_date = spine.activity_date
