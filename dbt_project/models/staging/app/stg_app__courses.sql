with source as (
    select * from {{ source('app', 'courses') }}
),

renamed as (
    select
        id as course_id,
        slug,
        title,
        category,
        level,
        published_at
    from source
)

select * from renamed
