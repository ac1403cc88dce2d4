{{
    config(
        indexes=[{'columns': ['user_id'], 'unique': true}, {'columns': ['rank']}],
        pre_hook="set local enable_nestloop = off",
    )
}}
{#-
    No nested loops in this build (the setting lasts for its transaction only). The
    planner cannot count the users of `points` (a group by over a union of views: its
    default of 200 groups, 67 after the having) and, once int_user_days has statistics,
    it joined current_streaks to points with a nested loop that compared every pair:
    measured at 300,000 users (182,100 with points, 19,121 with a streak), 3.3 billion
    join-filter comparisons and 99 s for this model in the five-minute run; with hash
    joins 4.2 s. The 8 s of the full build before int_user_days was analyzed was the
    same query with another plan. The per-user LATERAL in active_days stays a nested loop
    (it has no other plan, so the setting does not move it): an index range per user.
-#}
{#-
    One row per user with points > 0 up to the end of as_of_date (lesson completions
    and achievement unlocks, see int_points_earned), among the users signed up by then
    (the inner join with int_users_as_of, made once per user after summing). rank is RANK() over total_points
    descending: ties share a rank. display_name is masked ("Nguyễn V. A.").
    current_streak_days: consecutive active local days ending on as_of_date, or ending the
    day before when the user has not been active yet on as_of_date; otherwise 0.
-#}

with users as (
    select * from {{ ref('int_users_as_of') }}
),

points as (
    select
        user_id,
        sum(points) as total_points,
        sum(points) filter (where earned_at >= {{ local_day_start(as_of_date() ~ ' - 6') }}) as points_7d,
        count(*) filter (where source = 'achievement') as achievements_count
    from {{ ref('int_points_earned') }}
    group by user_id
    having sum(points) > 0
),

{#- A current streak ends on as_of_date or the day before, so only users active on one of
    those days can have one (the others get 0): their days are the only ones numbered,
    read per user through int_user_days' (user_id, activity_date) index rather than by a
    scan of every user's days. -#}
recently_active as (
    select distinct user_id
    from {{ ref('int_user_days') }}
    where activity_date between {{ as_of_date() }} - 1 and {{ as_of_date() }}
),

active_days as (
    select recently_active.user_id, days.activity_date
    from recently_active
    -- noqa: disable=LT02
    cross join lateral (
        select user_days.activity_date
        from {{ ref('int_user_days') }} as user_days
        where user_days.user_id = recently_active.user_id
            and user_days.activity_date <= {{ as_of_date() }}
        offset 0  -- keep it a per-user index range, never a hash of every user's days
    ) as days
    -- noqa: enable=LT02
),

islands as (
    select
        user_id,
        activity_date,
        activity_date - cast(row_number() over (partition by user_id order by activity_date) as integer)
            as island
    from active_days
),

streaks as (
    select user_id, max(activity_date) as streak_end, count(*) as streak_days
    from islands
    group by user_id, island
),

current_streaks as (
    select user_id, max(streak_days) as current_streak_days
    from streaks
    where streak_end >= {{ as_of_date() }} - 1
    group by user_id
)

select
    points.user_id,
    {{ mask_full_name('users.full_name') }} as display_name,
    cast(points.total_points as integer) as total_points,
    cast(coalesce(points.points_7d, 0) as integer) as points_7d,
    cast(rank() over (order by points.total_points desc) as integer) as rank,
    cast(points.achievements_count as integer) as achievements_count,
    cast(coalesce(current_streaks.current_streak_days, 0) as integer) as current_streak_days,
    users.is_deleted
from points
inner join users on users.user_id = points.user_id
left join current_streaks on current_streaks.user_id = points.user_id
