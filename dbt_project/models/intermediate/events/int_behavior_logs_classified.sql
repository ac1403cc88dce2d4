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
        ],
    )
}}
{#-
    Every raw event, once, with the reason it does not count ('valid' when it does).
    The one place that applies the contract's "Which events count" rules, in order:
    unknown_user, unknown_event_type, future_timestamp, before_signup, duplicate.

    Incremental runs reclassify the events of the lookback window (local dates from
    as_of_date - lookback_days, or from lookback_days before the last date the previous
    run classified when runs were missed) and every event that arrived since the last
    run; the duplicate check sees all raw events sharing (user_id, occurred_at) with
    those, so a late copy of an old event is still caught. Events that were in the future
    at the last run fall inside that window, so they count once their date has come.
-#}

{#- stg_app__behavior_logs is referenced directly (not through a CTE used several times,
    which PostgreSQL would materialise in full). -#}
with
{% if is_incremental() %}
bounds as (
    select {{ incremental_window_start(
        "select max(local_date) from " ~ this ~ " where reason <> 'future_timestamp'"
    ) }} as window_start
),

arrived as (
    select event_id, user_id, occurred_at
    from {{ ref('stg_app__behavior_logs') }}
    where event_id > (select coalesce(max(event_id), 0) from {{ this }})
),

candidates as (
    select * from {{ ref('stg_app__behavior_logs') }}
    where occurred_at >= (select window_start from bounds)
        or event_id in (select event_id from arrived)
        or (user_id, occurred_at) in (select user_id, occurred_at from arrived)
),
{% else %}
candidates as (
    select * from {{ ref('stg_app__behavior_logs') }}
),
{% endif %}

users as (
    select user_id, signed_up_at from {{ ref('stg_app__users') }}
),

ranked as (
    select
        candidates.*,
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
{% if is_incremental() %}
where occurred_at >= (select window_start from bounds)
    or event_id in (select event_id from arrived)
{% endif %}
