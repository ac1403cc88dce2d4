{{
    config(
        materialized='incremental',
        unique_key='user_id',
        incremental_strategy='delete+insert',
        on_schema_change='fail',
        indexes=[{'columns': ['user_id', 'session_number'], 'unique': true}],
    )
}}
{#-
    Sessions of each user: a new session starts when the gap since the user's previous
    valid event is more than session_gap_minutes (30): a gap of exactly 30 minutes stays
    in the same session. Session length = last event - first event. last_ingested_at: the
    latest ingested_at of the session's events.
    Incremental runs recompute, from their whole history (unique_key user_id: all their
    sessions are replaced), the users with a valid event in the lookback window (reaching
    back to before the last session already here when runs were missed) or with an event
    ingested since the previous run (late events).
-#}

with
{% if is_incremental() %}
changed_users as (
    select user_id from {{ ref('int_events_valid') }}
    where local_date >= {{ incremental_window_start_date(
        "select " ~ local_date("max(session_end)") ~ " from " ~ this
    ) }}
    union
    select user_id from {{ ref('int_events_valid') }}
    where ingested_at >= {{ arrived_after("select max(last_ingested_at) from " ~ this) }}
),
{% endif %}

events as (
    select user_id, event_id, occurred_at, ingested_at from {{ ref('int_events_valid') }}
    {% if is_incremental() %}
    where user_id in (select user_id from changed_users)
    {% endif %}
),

gaps as (
    select
        user_id,
        event_id,
        occurred_at,
        ingested_at,
        case
            when lag(occurred_at) over by_user is null then 1
            when occurred_at - lag(occurred_at) over by_user
                > interval '{{ var("session_gap_minutes") }} minutes' then 1
            else 0
        end as starts_session
    from events
    window by_user as (partition by user_id order by occurred_at, event_id)
),

numbered as (
    select
        *,
        sum(starts_session) over (
            partition by user_id order by occurred_at, event_id
            rows between unbounded preceding and current row
        ) as session_number
    from gaps
)

select
    user_id,
    cast(session_number as integer) as session_number,
    min(occurred_at) as session_start,
    max(occurred_at) as session_end,
    count(*) as events,
    cast(extract(epoch from max(occurred_at) - min(occurred_at)) as double precision) as duration_seconds,
    max(ingested_at) as last_ingested_at
from numbered
group by user_id, session_number
