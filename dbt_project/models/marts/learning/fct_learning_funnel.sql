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
    cast(round({{ safe_ratio('enrolled', 'signed_up') }}, 4) as numeric(6, 4)) as enroll_rate,
    cast(round({{ safe_ratio('started_lesson', 'enrolled') }}, 4) as numeric(6, 4)) as start_rate,
    cast(round({{ safe_ratio('completed_course', 'started_lesson') }}, 4) as numeric(6, 4)) as completion_rate,
    cast(round({{ safe_ratio('completed_course', 'signed_up') }}, 4) as numeric(6, 4)) as overall_conversion,
    cast(round(cast(median_hours_to_enroll as numeric), 2) as numeric(10, 2)) as median_hours_to_enroll
from counts
