-- depends_on: {{ ref('int_behavior_logs_classified') }}
{{
    config(
        materialized='incremental',
        unique_key=['user_id', 'activity_date'],
        incremental_strategy='delete+insert',
        on_schema_change='fail',
        indexes=[
            {'columns': ['user_id', 'activity_date'], 'unique': true},
            {'columns': ['activity_date']},
        ],
    )
}}
{#-
    One row per (user, local date) with at least one valid event: the user was active.
    last_ingested_at: the latest ingested_at of that day's valid events.
    Incremental runs replace the (user, date) rows that can have changed, each from all of
    that user's valid events of that date (unique_key user_id, activity_date):
    - every pair of an event ingested since the previous run (late events, whatever
      their date): the arrivals mark is the one every incremental model uses;
    - every pair dated after the last date already here (lookback_days before it when
      set): what the new as-of date makes count (events that were in the future), and
      when runs were missed, every date in between.
    A day's other users are not read again: a five-minute run reads the new events' users'
    days, not the whole of today, and a daily build does not read all of yesterday again.
    No other event changes class without a raw row arriving (int_behavior_logs_classified
    re-classifies the copies of an arrival, which share its user and time, so its pair).
-#}

{%- set day_start = local_day_start("changed.activity_date") %}
{%- set next_day_start = local_day_start("changed.activity_date + 1") %}

with
{% if is_incremental() %}
changed as (
    select user_id, local_date as activity_date
    from {{ ref('int_behavior_logs_classified') }}
    where ingested_at >= {{ arrived_after("select max(last_ingested_at) from " ~ this) }}
        and user_id is not null
    union
    select user_id, local_date as activity_date
    from {{ ref('int_behavior_logs_classified') }}
    where local_date > {{ incremental_window_start_date("select max(activity_date) from " ~ this) }}
        and local_date <= {{ as_of_date() }}
        and user_id is not null
),

events as (
    select day_events.*
    from changed
    -- noqa: disable=LT02
    cross join lateral (
        select valid.user_id, valid.local_date, valid.occurred_at, valid.ingested_at
        from {{ ref('int_events_valid') }} as valid
        where valid.user_id = changed.user_id
            and valid.occurred_at >= {{ day_start }}
            and valid.occurred_at < {{ next_day_start }}
        offset 0  -- one index range per (user, date), never a scan of the day
    ) as day_events
    -- noqa: enable=LT02
)
{% else %}
events as (
    select user_id, local_date, occurred_at, ingested_at from {{ ref('int_events_valid') }}
)
{% endif %}

select
    user_id,
    local_date as activity_date,
    {{ week_start('local_date') }} as activity_week,
    count(*) as events,
    min(occurred_at) as first_event_at,
    max(occurred_at) as last_event_at,
    max(ingested_at) as last_ingested_at
from events
group by user_id, local_date
