{{ config(indexes=[{'columns': ['course_id'], 'unique': true}]) }}
{#-
    One row per course: users who enrolled, then started a lesson in it at or after the
    enrollment, then completed every lesson at or after that start (no time window).
-#}

with courses as (
    select * from {{ ref('dim_courses') }}
),

steps as (
    select * from {{ ref('int_enrollment_steps') }}
),

per_course as (
    select
        course_id,
        count(distinct user_id) as enrolled_users,
        count(distinct user_id) filter (where first_started_at is not null) as started_users,
        count(distinct user_id) filter (where completed_at is not null) as completed_users,
        percentile_cont(0.5) within group (
            order by extract(epoch from completed_at - enrolled_at) / 86400.0
        ) filter (where completed_at is not null) as median_days_to_complete
    from steps
    group by course_id
)

select
    courses.course_id,
    courses.title,
    courses.category,
    courses.level,
    cast(coalesce(per_course.enrolled_users, 0) as integer) as enrolled_users,
    cast(coalesce(per_course.started_users, 0) as integer) as started_users,
    cast(coalesce(per_course.completed_users, 0) as integer) as completed_users,
    {{ safe_ratio('per_course.completed_users', 'per_course.enrolled_users') }} as completion_rate,
    per_course.median_days_to_complete
from courses
left join per_course on per_course.course_id = courses.course_id
