with source as (
    select * from {{ source('app', 'achievements') }}
),

renamed as (
    select
        id as achievement_id,
        code,
        name,
        points
    from source
)

select * from renamed
