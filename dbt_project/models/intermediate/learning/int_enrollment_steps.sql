{{ config(materialized='table', indexes=[{'columns': ['enrollment_id'], 'unique': true}]) }}
{#-
    One row per enrollment that counts (enrolled on or after signup, local date on or
    before as_of_date), with the funnel steps inside that course:
    - first_started_at: the earliest user_progress.started_at in the course at or after
      the enrollment;
    - lessons_completed_at: when every lesson of the course is COMPLETED, the latest
      completed_at of its lessons, whenever those lessons were started (the learning
      funnel's step 4: a lesson previewed before enrolling still counts); never for a
      course with no lessons;
    - completed_at: lessons_completed_at, provided it is at or after first_started_at
      (the course funnel, which holds the course constant: completed after starting it
      after enrolling).
    Only facts whose local date is on or before as_of_date count.
-#}

with users as (
    select user_id, signed_up_at from {{ ref('int_users_as_of') }}
),

enrollments as (
    select enrollments.*
    from {{ ref('stg_app__enrollments') }} as enrollments
    inner join users on users.user_id = enrollments.user_id
    where enrollments.enrolled_at >= users.signed_up_at
        and enrollments.enrolled_at < {{ as_of_end() }}
),

lesson_counts as (
    select course_id, count(*) as lessons
    from {{ ref('stg_app__lessons') }}
    group by course_id
),

progress as (
    select *
    from {{ ref('stg_app__user_progress') }}
    where started_at < {{ as_of_end() }}
),

per_course as (
    select
        enrollments.enrollment_id,
        min(progress.started_at) filter (
            where progress.started_at >= enrollments.enrolled_at
        ) as first_started_at,
        count(distinct progress.lesson_id) filter (
            where progress.is_completed and progress.completed_at < {{ as_of_end() }}
        ) as lessons_completed,
        max(progress.completed_at) filter (
            where progress.is_completed and progress.completed_at < {{ as_of_end() }}
        ) as last_completed_at
    from enrollments
    left join progress
        on progress.user_id = enrollments.user_id
            and progress.course_id = enrollments.course_id
    group by enrollments.enrollment_id
)

select
    enrollments.enrollment_id,
    enrollments.user_id,
    enrollments.course_id,
    enrollments.enrolled_at,
    per_course.first_started_at,
    coalesce(lesson_counts.lessons, 0) as course_lessons,
    per_course.lessons_completed,
    case
        when lesson_counts.lessons > 0 and per_course.lessons_completed = lesson_counts.lessons
            then per_course.last_completed_at
    end as lessons_completed_at,
    case
        when lesson_counts.lessons > 0
            and per_course.lessons_completed = lesson_counts.lessons
            and per_course.last_completed_at >= per_course.first_started_at
            then per_course.last_completed_at
    end as completed_at
from enrollments
inner join per_course on per_course.enrollment_id = enrollments.enrollment_id
left join lesson_counts on lesson_counts.course_id = enrollments.course_id
