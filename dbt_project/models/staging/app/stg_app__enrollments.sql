with source as (
    select * from {{ source('app', 'enrollments') }}
),

renamed as (
    select
        id as enrollment_id,
        user_id,
        course_id,
        enrolled_at
    from source
)

select * from renamed
