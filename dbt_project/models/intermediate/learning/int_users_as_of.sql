{#- Users who count: their local signup date is on or before as_of_date. -#}
select *
from {{ ref('stg_app__users') }}
where signup_date <= {{ as_of_date() }}
