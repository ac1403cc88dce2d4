{{
    config(
        materialized='incremental',
        unique_key='user_id',
        incremental_strategy='delete+insert',
        on_schema_change='fail',
        indexes=[{'columns': ['user_id'], 'unique': true}],
    )
}}
{#-
    Per user with a valid event, from the events alone: total_events, active_days,
    last_active_date, last_ingested_at (the latest ingested_at of the user's valid events),
    preferred_hour (local hour with most events; ties: earliest), preferred_day_of_week
    (ISO day with most events; ties: lowest), favorite_category (course category with
    most events carrying a course; ties: alphabetical; null if none). The part of
    fct_student_behavior_patterns that reads the event log; a model of its own so that it
    runs beside int_sessions rather than after it.
    Incremental runs recompute, from their whole history, the users with a valid event
    dated after the last active date already here (about the previous as_of_date;
    earlier when runs were missed, minus lookback_days: future then, valid now) or
    ingested since the previous run (late events included).
-#}

with
{% if is_incremental() %}
{%- set since = "coalesce(" ~ constant_of("select max(last_active_date) from " ~ this, 'date')
    ~ " - " ~ var("lookback_days") ~ ", " ~ incremental_start_date() ~ ")" %}
touched as (
    select user_id from {{ ref('int_events_valid') }}
    where local_date > {{ since }}
    union
    select user_id from {{ ref('int_events_valid') }}
    where ingested_at >= {{ arrived_after("select max(last_ingested_at) from " ~ this) }}
),
{% endif %}

events as (
    {% if is_incremental() %}
    select history.*
    from touched
    cross join lateral (
        select * from {{ ref('int_events_valid') }} as events
        where events.user_id = touched.user_id
        offset 0  -- one index range scan per user, never a scan of the whole log
    ) as history
    {% else %}
    select * from {{ ref('int_events_valid') }}
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
)

select
    totals.user_id,
    cast(totals.total_events as integer) as total_events,
    cast(totals.active_days as integer) as active_days,
    totals.last_active_date,
    totals.last_ingested_at,
    hours.preferred_hour,
    days.preferred_day_of_week,
    categories.favorite_category
from totals
inner join hours on hours.user_id = totals.user_id
inner join days on days.user_id = totals.user_id
left join categories on categories.user_id = totals.user_id
