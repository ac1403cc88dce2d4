-- depends_on: {{ ref('int_behavior_logs_classified') }}
{{
    config(
        materialized='incremental',
        unique_key='activity_date',
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
    Incremental runs replace whole dates (unique_key activity_date): the dates from the
    last one already here (lookback_days earlier; every date in between when runs were
    missed) to as_of_date, and every date with an event ingested since the previous run
    (late events).
-#}

with events as (
    select * from {{ ref('int_events_valid') }}
    {% if is_incremental() %}
    where local_date in {{ constant_list(
        "select cast(day as date) from generate_series("
        ~ incremental_window_start_date("select max(activity_date) from " ~ this) ~ ", "
        ~ as_of_date() ~ ", interval '1 day') as day"
        ~ " union select local_date from " ~ ref('int_behavior_logs_classified')
        ~ " where ingested_at >= " ~ arrived_after("select max(last_ingested_at) from " ~ this),
        'date'
    ) }}
    {% endif %}
)

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
