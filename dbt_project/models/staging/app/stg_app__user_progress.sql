with source as (
    select * from {{ source('app', 'user_progress') }}
),

renamed as (
    select
        id as progress_id,
        user_id,
        lesson_id,
        course_id,
        status,
        status = 'COMPLETED' as is_completed,
        progress_pct,
        time_spent_seconds,
        started_at,
        completed_at,
        updated_at
    from source
)

select * from renamed
