{{
    config(
        materialized='incremental',
        unique_key='user_id',
        incremental_strategy='tail_replace',
        tail_column='session_number',
        on_schema_change='fail',
        indexes=[{'columns': ['user_id', 'session_number'], 'unique': true}],
    )
}}
{#-
    Sessions of each user: a new session starts when the gap since the user's previous
    valid event is more than session_gap_minutes (30): a gap of exactly 30 minutes stays
    in the same session. Session length = last event - first event. last_ingested_at: the
    latest ingested_at of the session's events.

    Incremental runs recompute the sessions of the users with a valid event dated after
    the last session already here (lookback_days earlier; further back when as_of_date
    is earlier) or with an event ingested since the previous run (late events), and only
    their recent sessions: a session that ended more than the gap before the user's
    earliest changed event cannot change (no new event can join it), so it stays as it is;
    the events after the last such session are split again and numbered on from it. The
    'tail_replace' strategy (macros/incremental.sql) replaces each of those users'
    sessions from the first recomputed one on.
-#}

{%- set gap = "interval '" ~ var("session_gap_minutes") ~ " minutes'" %}

with
{% if is_incremental() %}
changed_users as (
    select user_id, min(occurred_at) as changed_from
    from (
        select user_id, occurred_at from {{ ref('int_events_valid') }}
        where local_date > {{ incremental_window_start_date(
            "select " ~ local_date("max(session_end)") ~ " from " ~ this
        ) }}
        union all
        select user_id, occurred_at from {{ ref('int_events_valid') }}
        where ingested_at >= {{ arrived_after("select max(last_ingested_at) from " ~ this) }}
    ) as changed
    group by user_id
),

kept as (
    select sessions.*
    from {{ this }} as sessions
    inner join changed_users on changed_users.user_id = sessions.user_id
    where sessions.session_end < changed_users.changed_from - {{ gap }}
),

resume as (
    select
        changed_users.user_id,
        max(kept.session_end) as resume_after,
        coalesce(max(kept.session_number), 0) as sessions_before
    from changed_users
    left join kept on kept.user_id = changed_users.user_id
    group by changed_users.user_id
),

events as (
    select resume.user_id, recent.event_id, recent.occurred_at, recent.ingested_at, resume.sessions_before
    from resume
    cross join lateral (
        select events.event_id, events.occurred_at, events.ingested_at
        from {{ ref('int_events_valid') }} as events
        where events.user_id = resume.user_id
            and events.occurred_at > coalesce(resume.resume_after, '-infinity'::timestamptz)
        offset 0  -- one index range scan per user, never a scan of the whole log
    ) as recent
),
{% else %}
events as (
    select user_id, event_id, occurred_at, ingested_at, 0 as sessions_before
    from {{ ref('int_events_valid') }}
),
{% endif %}

gaps as (
    select
        user_id,
        event_id,
        occurred_at,
        ingested_at,
        sessions_before,
        case
            when lag(occurred_at) over by_user is null then 1
            when occurred_at - lag(occurred_at) over by_user > {{ gap }} then 1
            else 0
        end as starts_session
    from events
    window by_user as (partition by user_id order by occurred_at, event_id)
),

numbered as (
    select
        *,
        sessions_before + sum(starts_session) over (
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
