with source as (
    select * from {{ source('app', 'lessons') }}
),

renamed as (
    select
        id as lesson_id,
        course_id,
        position,
        title,
        content_type,
        duration_minutes,
        points
    from source
)

select * from renamed
