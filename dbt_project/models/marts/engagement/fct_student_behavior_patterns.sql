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
    One row per user with a valid event: input for AI personalisation. The event-log
    figures and preferences come from int_user_event_profiles (ties: preferred_hour takes
    the earliest hour, preferred_day_of_week the lowest ISO day, favorite_category the
    alphabetically first category), sessions from int_sessions, lessons from
    user_progress.
    Incremental runs recompute the users whose profile changed since the previous run
    (new valid events: a later last active date or a later last_ingested_at) and those
    who started or updated a lesson since then. The post-hook then moves everyone's
    days_since_last_active to the new as_of_date.
-#}

with users as (
    select user_id from {{ ref('int_users_as_of') }}
),

profiles as (
    select profiles.*
    from {{ ref('int_user_event_profiles') }} as profiles
    inner join users on users.user_id = profiles.user_id
    {% if is_incremental() %}
    {%- set since = "coalesce(" ~ constant_of("select max(last_active_date) from " ~ this, 'date')
        ~ " - " ~ var("lookback_days") ~ ", " ~ incremental_start_date() ~ ")" %}
    {%- set arrived = arrived_after("select max(last_ingested_at) from " ~ this) %}
    where profiles.user_id in (
        select user_id from {{ ref('int_user_event_profiles') }}
        where last_active_date > {{ since }} or last_ingested_at >= {{ arrived }}
        union
        select user_id from {{ ref('stg_app__user_progress') }}
        where updated_at >= {{ arrived }} or started_at >= {{ arrived }}
    )
    {% endif %}
),

sessions as (
    select
        user_id,
        count(*) as sessions,
        -- numeric: an exact sum, the same whatever order the rows come in
        cast(avg(cast(duration_seconds as numeric)) / 60 as double precision) as avg_session_minutes
    from {{ ref('int_sessions') }}
    where user_id in (select user_id from profiles)
    group by user_id
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
        and progress.user_id in (select user_id from profiles)
    group by progress.user_id
)


select
    profiles.user_id,
    profiles.total_events,
    profiles.active_days,
    cast(sessions.sessions as integer) as sessions,
    sessions.avg_session_minutes,
    profiles.preferred_hour,
    profiles.preferred_day_of_week,
    profiles.favorite_category,
    cast(coalesce(lessons.lessons_started, 0) as integer) as lessons_started,
    cast(coalesce(lessons.lessons_completed, 0) as integer) as lessons_completed,
    {{ safe_ratio('lessons.completed_beginner', 'lessons.started_beginner') }} as completion_rate_beginner,
    {{ safe_ratio('lessons.completed_intermediate', 'lessons.started_intermediate') }}
        as completion_rate_intermediate,
    {{ safe_ratio('lessons.completed_expert', 'lessons.started_expert') }} as completion_rate_expert,
    profiles.last_active_date,
    {{ as_of_date() }} - profiles.last_active_date as days_since_last_active,
    profiles.last_ingested_at
from profiles
inner join sessions on sessions.user_id = profiles.user_id
left join lessons on lessons.user_id = profiles.user_id
