with source as (
    select * from {{ source('app', 'users') }}
),

renamed as (
    select
        id as user_id,
        full_name,
        gender,
        province,
        birth_year,
        persona,
        signup_channel,
        created_at as signed_up_at,
        {{ local_date('created_at') }} as signup_date,
        {{ week_start(local_date('created_at')) }} as cohort_week,
        deleted_at,
        deleted_at is not null as is_deleted
    from source
)

select * from renamed
