{{ config(indexes=[{'columns': ['user_id'], 'unique': true}, {'columns': ['cohort_week']}]) }}
{#- Users who count (signed up on or before as_of_date), without PII: no email, phone or name. -#}
with users as (
    select * from {{ ref('int_users_as_of') }}
)

select
    user_id,
    gender,
    province,
    birth_year,
    persona,
    signup_channel,
    signed_up_at,
    signup_date,
    cohort_week,
    is_deleted
from users
