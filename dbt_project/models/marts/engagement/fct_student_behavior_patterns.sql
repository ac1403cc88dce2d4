-- depends_on: {{ ref('int_user_days') }}
{{
    config(
        materialized='incremental',
        unique_key='user_id',
        incremental_strategy='delete+insert',
        on_schema_change='fail',
        indexes=[{'columns': ['user_id'], 'unique': true}],
        post_hook=[
            "{{ ensure_fillfactor(this, 50) }}",
            "update {{ this }} set days_since_last_active = {{ as_of_date() }} - last_active_date
             where days_since_last_active is distinct from {{ as_of_date() }} - last_active_date",
        ],
    )
}}
{#-
    One row per user with a valid event: input for AI personalisation.
    Ties: preferred_hour takes the earliest hour, preferred_day_of_week the lowest ISO day,
    favorite_category the alphabetically first category.
    Incremental runs recompute, from their whole history, the users whose facts changed
    since the previous run: a valid event dated after the last active date already here
    (about the previous as_of_date; earlier when runs were missed), an event ingested or
    a lesson started or updated since the previous run (late events included).
    The post-hooks then move everyone's days_since_last_active to the new as_of_date, in
    place: the table keeps half of each page free for it (ensure_fillfactor).
    last_ingested_at: the latest ingested_at of the user's valid events.
-#}

with users as (
    select user_id from {{ ref('int_users_as_of') }}
),

{% if is_incremental() %}
{#- What can have changed since the previous run: events dated after the last active date
    already here (about the previous as_of_date; earlier when runs were missed, minus
    lookback_days): future then, valid now; events and lesson progress written since the
    previous run (ingested_at, updated_at or started_at at or after the arrival mark). -#}
{%- set since = incremental_window_start_date("select max(last_active_date) from " ~ this) %}
{%- set arrived = arrived_after("select max(last_ingested_at) from " ~ this) %}
touched as (
    select user_id from {{ ref('int_user_days') }}
    where activity_date > {{ since }}
    union
    select user_id from {{ ref('stg_app__user_progress') }}
    where updated_at >= {{ arrived }} or started_at >= {{ arrived }}
    union
    select user_id from {{ ref('int_events_valid') }}
    where ingested_at >= {{ arrived }}
),
{% endif %}

events as (
    {% if is_incremental() %}
    select history.*
    from touched
    inner join users on users.user_id = touched.user_id
    -- noqa: disable=LT02
    cross join lateral (
        select * from {{ ref('int_events_valid') }} as events
        where events.user_id = touched.user_id
        offset 0  -- one index range scan per user, never a scan of the whole log
    ) as history
    -- noqa: enable=LT02
    {% else %}
    select events.*
    from {{ ref('int_events_valid') }} as events
    inner join users on users.user_id = events.user_id
    {% endif %}
),

{#- One pass over the events: counts per (user, local date), (user, local hour) and (user,
    course category), with grouping sets; every per-user figure comes from these. -#}
facets as (
    select
        events.user_id,
        events.local_date,
        events.local_hour,
        courses.category,
        grouping(events.local_date, events.local_hour, courses.category) as facet,
        count(*) as events,
        max(events.ingested_at) as last_ingested_at
    from events
    left join {{ ref('stg_app__courses') }} as courses on courses.course_id = events.course_id
    group by grouping sets (
        (events.user_id, events.local_date),
        (events.user_id, events.local_hour),
        (events.user_id, courses.category)
    )
),

by_date as (
    select * from facets where facet = 3  -- (user_id, local_date)
),

totals as (
    select
        user_id,
        sum(events) as total_events,
        count(*) as active_days,
        max(local_date) as last_active_date,
        max(last_ingested_at) as last_ingested_at
    from by_date
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
    from facets
    where facet = 5  -- (user_id, local_hour)
    order by user_id, events desc, local_hour asc
),

days as (
    select distinct on (user_id) user_id, local_iso_dow as preferred_day_of_week
    from (
        select user_id, cast(extract(isodow from local_date) as integer) as local_iso_dow, sum(events) as n
        from by_date
        group by 1, 2
    ) as by_day
    order by user_id, n desc, local_iso_dow asc
),

categories as (
    select distinct on (user_id) user_id, category as favorite_category
    from facets
    where facet = 6 and category is not null  -- (user_id, category)
    order by user_id, events desc, category asc
),

lessons as (
    select
        progress.user_id,
        count(*) as lessons_started,
        count(*) filter (where progress.is_completed and progress.completed_at < {{ as_of_end() }})
            as lessons_completed,
        count(*) filter (where courses.level = 'BEGINNER') as started_beginner,
        count(*) filter (
            where courses.level = 'BEGINNER' and progress.is_completed
            and progress.completed_at < {{ as_of_end() }}
        ) as completed_beginner,
        count(*) filter (where courses.level = 'INTERMEDIATE') as started_intermediate,
        count(*) filter (
            where courses.level = 'INTERMEDIATE' and progress.is_completed
            and progress.completed_at < {{ as_of_end() }}
        ) as completed_intermediate,
        count(*) filter (where courses.level = 'EXPERT') as started_expert,
        count(*) filter (
            where courses.level = 'EXPERT' and progress.is_completed
            and progress.completed_at < {{ as_of_end() }}
        ) as completed_expert
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
