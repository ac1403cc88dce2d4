{{ config(indexes=[{'columns': ['course_id'], 'unique': true}]) }}
with courses as (
    select * from {{ ref('stg_app__courses') }}
),

lessons as (
    select
        course_id,
        count(*) as lessons,
        sum(points) as total_points,
        sum(duration_minutes) as total_duration_minutes
    from {{ ref('stg_app__lessons') }}
    group by course_id
)

select
    courses.course_id,
    courses.slug,
    courses.title,
    courses.category,
    courses.level,
    courses.published_at,
    cast(coalesce(lessons.lessons, 0) as integer) as lessons,
    cast(coalesce(lessons.total_points, 0) as integer) as total_points,
    cast(coalesce(lessons.total_duration_minutes, 0) as integer) as total_duration_minutes
from courses
left join lessons on lessons.course_id = courses.course_id
