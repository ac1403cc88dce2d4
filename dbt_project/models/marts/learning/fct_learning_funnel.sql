{{ config(indexes=[{'columns': ['cohort_week'], 'unique': true}]) }}
{#-
    One row per signup cohort week: how many of its users reached each ordered step of
    the learning funnel within funnel_window_days of signup (see int_user_funnel_steps).
-#}

with steps as (
    select * from {{ ref('int_user_funnel_steps') }}
),

counts as (
    select
        cohort_week,
        count(*) as signed_up,
        count(enrolled_at) as enrolled,
        count(started_at) as started_lesson,
        count(completed_at) as completed_course,
        percentile_cont(0.5) within group (
            order by extract(epoch from enrolled_at - signed_up_at) / 3600.0
        ) filter (where enrolled_at is not null) as median_hours_to_enroll
    from steps
    group by cohort_week
)

select
    cohort_week,
    cast(signed_up as integer) as signed_up,
    cast(enrolled as integer) as enrolled,
    cast(started_lesson as integer) as started_lesson,
    cast(completed_course as integer) as completed_course,
    {{ safe_ratio('enrolled', 'signed_up') }} as enroll_rate,
    {{ safe_ratio('started_lesson', 'enrolled') }} as start_rate,
    {{ safe_ratio('completed_course', 'started_lesson') }} as completion_rate,
    {{ safe_ratio('completed_course', 'signed_up') }} as overall_conversion,
    median_hours_to_enroll
from counts
