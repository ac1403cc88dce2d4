with source as (
    select * from {{ source('app', 'behavior_logs') }}
),

renamed as (
    select
        id as event_id,
        user_id,
        session_id,
        event_type,
        course_id,
        lesson_id,
        occurred_at,
        duration_seconds,
        properties,
        device,
        ingested_at
    from source
)

select * from renamed
