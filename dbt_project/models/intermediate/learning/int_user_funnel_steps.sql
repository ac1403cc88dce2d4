{{ config(materialized='table', indexes=[{'columns': ['user_id'], 'unique': true}]) }}
{#-
    One row per user who counts, with the time of each ordered learning-funnel step.
    Each step happens within funnel_window_days of signup and at or after the previous one:
    2. enrolled_at: the first enrollment (at or after signup) in the window;
    3. started_at: the first lesson start in an enrolled course, at or after that
       course's enrollment, in the window;
    4. completed_at: the first time every lesson of an enrolled course (enrolled at or
       after signup and in the window) is COMPLETED (the latest completed_at of its
       lessons), at or after step 3, in the window. When that course's lessons were
       started does not matter here (a lesson previewed before enrolling counts).
-#}

with users as (
    select
        user_id,
        signed_up_at,
        cohort_week,
        signed_up_at + interval '{{ var("funnel_window_days") }} days' as window_end
    from {{ ref('int_users_as_of') }}
),

steps as (
    select * from {{ ref('int_enrollment_steps') }}
),

enrolled as (
    select users.user_id, min(steps.enrolled_at) as enrolled_at
    from users
    inner join steps on steps.user_id = users.user_id
    where steps.enrolled_at <= users.window_end
    group by users.user_id
),

started as (
    select users.user_id, min(steps.first_started_at) as started_at
    from users
    inner join steps on steps.user_id = users.user_id
    where steps.first_started_at <= users.window_end
    group by users.user_id
),

completed as (
    select users.user_id, min(steps.lessons_completed_at) as completed_at
    from users
    inner join started on started.user_id = users.user_id
    inner join steps on steps.user_id = users.user_id
    where steps.enrolled_at <= users.window_end
        and steps.lessons_completed_at >= started.started_at
        and steps.lessons_completed_at <= users.window_end
    group by users.user_id
)

select
    users.user_id,
    users.cohort_week,
    users.signed_up_at,
    enrolled.enrolled_at,
    started.started_at,
    completed.completed_at
from users
left join enrolled on enrolled.user_id = users.user_id
left join started on started.user_id = users.user_id
left join completed on completed.user_id = users.user_id
