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
        post_hook=[
            "{{ ensure_constraints(this, checks={'reason': 'reason in ' ~ rejection_reasons()},
                                   not_null=['event_id', 'reason', 'is_valid']) }}",
        ],
    )
}}
{#-
    Every raw event, once, with the reason it does not count ('valid' when it does).
    The one place that applies the contract's "Which events count" rules, in order:
    unknown_user, unknown_event_type, future_timestamp, before_signup, duplicate.

    Incremental runs classify again only what can have changed since the last run:
    - every event that arrived since then, whatever its date or id: its ingested_at is at
      or after the latest one already here minus arrival_margin_minutes (the rule every
      incremental model downstream uses too, so they all see the same arrivals);
    - the events that were in the future at the last run (their date may have come);
    - every raw event sharing (user_id, occurred_at) with those, found through the raw
      index on (user_id, occurred_at), so the duplicate rule sees every copy of an event,
      a late copy of an old one included.
    An event written with an ingested_at older than that (a backfill that stamps the past)
    is left out until a full refresh; `vedfin build` counts such events.
    The arrivals are found with a constant bound on ingested_at: a scan of the raw log on
    the contract's indexes, an index range where the platform has indexed ingested_at
    (`vedfin db init` suggests it).
    The plan: one pass over the raw log with a constant bound, index lookups, no IN
    (subquery) inside an OR (which PostgreSQL 15/16 can run as a scan per row).
-#}

{%- set columns = ['event_id', 'user_id', 'session_id', 'event_type', 'course_id', 'lesson_id',
                   'occurred_at', 'duration_seconds', 'device', 'ingested_at'] -%}

with
{% if is_incremental() %}
{%- set arrived = arrived_after("select max(ingested_at) from " ~ this) %}
{%- set last_date = constant_of(
    "select max(local_date) from " ~ this ~ " where reason <> 'future_timestamp'", 'date'
) %}
changed as materialized (
    select {% for c in columns %}events.{{ c }}{{ ', ' if not loop.last }}{% endfor %}  -- noqa: LT05
    from {{ ref('stg_app__behavior_logs') }} as events
    where events.ingested_at >= {{ arrived }}
    union all
    select {% for c in columns %}events.{{ c }}{{ ', ' if not loop.last }}{% endfor %}  -- noqa: LT05
    from {{ this }} as previous
    inner join {{ ref('stg_app__behavior_logs') }} as events on events.event_id = previous.event_id
    where previous.local_date > {{ last_date }}
        and previous.reason = 'future_timestamp'
        and events.ingested_at < {{ arrived }}
),

changed_keys as materialized (
    select distinct user_id, occurred_at
    from changed
    where user_id is not null
),

candidates as (
    select copies.*
    from changed_keys
    -- noqa: disable=LT02
    cross join lateral (
        select {% for c in columns %}events.{{ c }}{{ ', ' if not loop.last }}{% endfor %}  -- noqa: LT05
        from {{ ref('stg_app__behavior_logs') }} as events
        where events.user_id = changed_keys.user_id
            and events.occurred_at = changed_keys.occurred_at
        offset 0  -- keep it a per-key index lookup, never a hash of the whole log
    ) as copies
    -- noqa: enable=LT02
    union all
    select * from changed where user_id is null
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
