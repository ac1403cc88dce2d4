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
    Incremental runs replace whole dates from the start of the lookback window, reaching
    back to before the last date already here when runs were missed (unique_key
    activity_date: every row of a recomputed date is replaced).
-#}

with events as (
    select * from {{ ref('int_events_valid') }}
    {% if is_incremental() %}
    where local_date >= {{ incremental_window_start_date("select max(activity_date) from " ~ this) }}
    {% endif %}
)

select
    user_id,
    local_date as activity_date,
    {{ week_start('local_date') }} as activity_week,
    count(*) as events,
    min(occurred_at) as first_event_at,
    max(occurred_at) as last_event_at
from events
group by user_id, local_date
