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
    in the same session. Session length = last event - first event.
    Incremental runs recompute, from their whole history, the users with a valid event
    in the lookback window, reaching back to before the last session already here when
    runs were missed (unique_key user_id: all their sessions are replaced).
-#}

with events as (
    select user_id, event_id, occurred_at from {{ ref('int_events_valid') }}
    {% if is_incremental() %}
    where user_id in (
        select distinct user_id from {{ ref('int_events_valid') }}
        where local_date >= {{ incremental_window_start_date(
            "select " ~ local_date("max(session_end)") ~ " from " ~ this
        ) }}
    )
    {% endif %}
),

gaps as (
    select
        user_id,
        event_id,
        occurred_at,
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
    cast(extract(epoch from max(occurred_at) - min(occurred_at)) as double precision) as duration_seconds
from numbered
group by user_id, session_number
