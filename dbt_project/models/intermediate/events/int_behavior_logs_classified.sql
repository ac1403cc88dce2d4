{{
    config(
        materialized='incremental',
        unique_key='event_id',
        incremental_strategy='delete+insert',
        on_schema_change='fail',
        indexes=[
            {'columns': ['event_id'], 'unique': true},
            {'columns': ['local_date']},
            {'columns': ['user_id', 'occurred_at']},
            {'columns': ['ingested_at']},
        ],
    )
}}
{#-
    Every raw event, once, with the reason it does not count ('valid' when it does).
    The one place that applies the contract's "Which events count" rules, in order:
    unknown_user, unknown_event_type, future_timestamp, before_signup, duplicate.

    Incremental runs reclassify
    - the events of the lookback window (local dates from as_of_date - lookback_days, or
      from lookback_days before the last date the previous run classified when runs were
      missed): events that were in the future at the last run count once their date has come;
    - every event that arrived since the last run, whatever its date or id: its ingested_at
      is at or after the latest one already here minus arrival_margin_minutes (the same
      rule every incremental model downstream uses, so they all see the same arrivals).
      An event written with an older ingested_at and dated before the window (a backfill)
      is left out until a full refresh; `vedfin build` counts such events;
    - every raw event sharing (user_id, occurred_at) with those (an index lookup), so the
      duplicate rule sees all copies of an event, a late copy of an old one included.
    The plan is one pass over the raw log with constant bounds (no IN-subquery inside an OR,
    which PostgreSQL 15/16 can run as a nested scan per row) plus one indexed join.
-#}

{%- set columns = ['event_id', 'user_id', 'session_id', 'event_type', 'course_id', 'lesson_id',
                   'occurred_at', 'duration_seconds', 'device', 'ingested_at'] -%}

with
{% if is_incremental() %}
bounds as materialized (
    select
        {{ incremental_window_start(
            "select max(local_date) from " ~ this ~ " where reason <> 'future_timestamp'"
        ) }} as window_start,
        {{ arrived_after("select max(ingested_at) from " ~ this) }} as arrived_after
),

direct as materialized (
    select {% for c in columns %}events.{{ c }}{{ ', ' if not loop.last }}{% endfor %}
    from {{ ref('stg_app__behavior_logs') }} as events
    cross join bounds
    where events.occurred_at >= bounds.window_start
        or events.ingested_at >= bounds.arrived_after
),

arrived_keys as materialized (
    select distinct direct.user_id, direct.occurred_at
    from direct
    cross join bounds
    where direct.occurred_at < bounds.window_start
        and direct.user_id is not null
),

candidates as (
    select * from direct
    union
    select {% for c in columns %}events.{{ c }}{{ ', ' if not loop.last }}{% endfor %}
    from {{ ref('stg_app__behavior_logs') }} as events
    inner join arrived_keys
        on arrived_keys.user_id = events.user_id
        and arrived_keys.occurred_at = events.occurred_at
),
{% else %}
candidates as (
    select {{ columns | join(', ') }} from {{ ref('stg_app__behavior_logs') }}
),
{% endif %}

users as (
    select user_id, signed_up_at from {{ ref('stg_app__users') }}
),

ranked as (
    select
        candidates.event_id,
        candidates.user_id,
        candidates.session_id,
        candidates.event_type,
        candidates.course_id,
        candidates.lesson_id,
        candidates.occurred_at,
        candidates.duration_seconds,
        candidates.device,
        candidates.ingested_at,
        row_number() over (
            partition by user_id, event_type, occurred_at, session_id, course_id, lesson_id
            order by event_id
        ) as copy_number
    from candidates
),

classified as (
    select
        ranked.event_id,
        ranked.user_id,
        ranked.session_id,
        ranked.event_type,
        ranked.course_id,
        ranked.lesson_id,
        ranked.occurred_at,
        ranked.duration_seconds,
        ranked.device,
        ranked.ingested_at,
        {{ local_date('ranked.occurred_at') }} as local_date,
        cast(extract(hour from {{ local_ts('ranked.occurred_at') }}) as integer) as local_hour,
        cast(extract(isodow from {{ local_ts('ranked.occurred_at') }}) as integer) as local_iso_dow,
        case
            when users.user_id is null then 'unknown_user'
            when ranked.event_type not in {{ known_event_types() }} then 'unknown_event_type'
            when {{ local_date('ranked.occurred_at') }} > {{ as_of_date() }} then 'future_timestamp'
            when ranked.occurred_at < users.signed_up_at then 'before_signup'
            when ranked.copy_number > 1 then 'duplicate'
            else 'valid'
        end as reason
    from ranked
    left join users on users.user_id = ranked.user_id
)

select
    *,
    reason = 'valid' as is_valid
from classified
