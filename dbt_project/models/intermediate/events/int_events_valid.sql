{#- The events that count (reason = 'valid'), with their local date, hour and ISO weekday. -#}
with classified as (
    select * from {{ ref('int_behavior_logs_classified') }}
)

select
    event_id,
    user_id,
    session_id,
    event_type,
    course_id,
    lesson_id,
    occurred_at,
    duration_seconds,
    device,
    ingested_at,
    local_date,
    local_hour,
    local_iso_dow
from classified
where is_valid
