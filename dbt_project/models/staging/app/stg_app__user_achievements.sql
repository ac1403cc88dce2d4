with source as (
    select * from {{ source('app', 'user_achievements') }}
),

renamed as (
    select
        user_id,
        achievement_id,
        unlocked_at
    from source
)

select * from renamed
