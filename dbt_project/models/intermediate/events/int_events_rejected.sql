{{ config(schema='audit', alias='rejected_behavior_logs') }}
{#- audit.rejected_behavior_logs: every event that does not count, with the first rule it breaks. -#}
with classified as (
    select * from {{ ref('int_behavior_logs_classified') }}
)

select
    event_id as id,
    reason,
    user_id,
    event_type,
    occurred_at,
    session_id,
    course_id,
    lesson_id,
    ingested_at
from classified
where not is_valid
