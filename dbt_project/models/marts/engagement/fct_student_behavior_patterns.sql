-- depends_on: {{ ref('int_user_days') }}
{{
    config(
        materialized='incremental',
        unique_key='user_id',
        incremental_strategy='delete+insert',
        on_schema_change='fail',
        indexes=[{'columns': ['user_id'], 'unique': true}],
        post_hook=[
            "update {{ this }} set days_since_last_active = {{ as_of_date() }} - last_active_date
             where days_since_last_active is distinct from {{ as_of_date() }} - last_active_date",
        ],
    )
}}
{#-
    One row per user with a valid event: input for AI personalisation.
    Ties: preferred_hour takes the earliest hour, preferred_day_of_week the lowest ISO day,
    favorite_category the alphabetically first category.
    Incremental runs recompute, from their whole history, the users with a valid event
    or a lesson started or completed in the lookback window (reaching back to before the
    last active date already here when runs were missed) or with an event ingested since
    the previous run (late events); the post-hook then moves everyone's
    days_since_last_active to the new as_of_date. last_ingested_at: the latest ingested_at
    of the user's valid events.
-#}

with users as (
    select user_id from {{ ref('int_users_as_of') }}
),

{% if is_incremental() %}
{%- set last_covered = "select max(last_active_date) from " ~ this %}
touched as (
    select user_id from {{ ref('int_user_days') }}
    where activity_date >= {{ incremental_window_start_date(last_covered) }}
    union
    select user_id from {{ ref('stg_app__user_progress') }}
    where updated_at >= {{ incremental_window_start(last_covered) }}
        or started_at >= {{ incremental_window_start(last_covered) }}
    union
    select user_id from {{ ref('int_events_valid') }}
    where ingested_at >= {{ arrived_after("select max(last_ingested_at) from " ~ this) }}
),
{% endif %}

events as (
    select events.*
    from {{ ref('int_events_valid') }} as events
    inner join users on users.user_id = events.user_id
    {% if is_incremental() %}
    where events.user_id in (select user_id from touched)
    {% endif %}
),

totals as (
    select
        user_id,
        count(*) as total_events,
        count(distinct local_date) as active_days,
        max(local_date) as last_active_date,
        max(ingested_at) as last_ingested_at
    from events
    group by user_id
),

sessions as (
    select
        user_id,
        count(*) as sessions,
        -- numeric: an exact sum, the same whatever order the rows come in
        cast(avg(cast(duration_seconds as numeric)) / 60 as double precision) as avg_session_minutes
    from {{ ref('int_sessions') }}
    where user_id in (select user_id from totals)
    group by user_id
),

hours as (
    select distinct on (user_id) user_id, local_hour as preferred_hour
    from (select user_id, local_hour, count(*) as n from events group by 1, 2) as by_hour
    order by user_id, n desc, local_hour asc
),

days as (
    select distinct on (user_id) user_id, local_iso_dow as preferred_day_of_week
    from (select user_id, local_iso_dow, count(*) as n from events group by 1, 2) as by_day
    order by user_id, n desc, local_iso_dow asc
),

categories as (
    select distinct on (user_id) user_id, category as favorite_category
    from (
        select events.user_id, courses.category, count(*) as n
        from events
        inner join {{ ref('stg_app__courses') }} as courses on courses.course_id = events.course_id
        group by 1, 2
    ) as by_category
    order by user_id, n desc, category asc
),

lessons as (
    select
        progress.user_id,
        count(*) as lessons_started,
        count(*) filter (where progress.is_completed and progress.completed_at < {{ as_of_end() }})
            as lessons_completed,
        count(*) filter (where courses.level = 'BEGINNER') as started_beginner,
        count(*) filter (where courses.level = 'BEGINNER' and progress.is_completed
                         and progress.completed_at < {{ as_of_end() }}) as completed_beginner,
        count(*) filter (where courses.level = 'INTERMEDIATE') as started_intermediate,
        count(*) filter (where courses.level = 'INTERMEDIATE' and progress.is_completed
                         and progress.completed_at < {{ as_of_end() }}) as completed_intermediate,
        count(*) filter (where courses.level = 'EXPERT') as started_expert,
        count(*) filter (where courses.level = 'EXPERT' and progress.is_completed
                         and progress.completed_at < {{ as_of_end() }}) as completed_expert
    from {{ ref('stg_app__user_progress') }} as progress
    inner join {{ ref('stg_app__courses') }} as courses on courses.course_id = progress.course_id
    where progress.started_at < {{ as_of_end() }}
        and progress.user_id in (select user_id from totals)
    group by progress.user_id
)

select
    totals.user_id,
    cast(totals.total_events as integer) as total_events,
    cast(totals.active_days as integer) as active_days,
    cast(sessions.sessions as integer) as sessions,
    sessions.avg_session_minutes,
    hours.preferred_hour,
    days.preferred_day_of_week,
    categories.favorite_category,
    cast(coalesce(lessons.lessons_started, 0) as integer) as lessons_started,
    cast(coalesce(lessons.lessons_completed, 0) as integer) as lessons_completed,
    {{ safe_ratio('lessons.completed_beginner', 'lessons.started_beginner') }} as completion_rate_beginner,
    {{ safe_ratio('lessons.completed_intermediate', 'lessons.started_intermediate') }}
        as completion_rate_intermediate,
    {{ safe_ratio('lessons.completed_expert', 'lessons.started_expert') }} as completion_rate_expert,
    totals.last_active_date,
    {{ as_of_date() }} - totals.last_active_date as days_since_last_active,
    totals.last_ingested_at
from totals
inner join sessions on sessions.user_id = totals.user_id
inner join hours on hours.user_id = totals.user_id
inner join days on days.user_id = totals.user_id
left join categories on categories.user_id = totals.user_id
left join lessons on lessons.user_id = totals.user_id
