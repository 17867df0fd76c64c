-- One row per experiment, arm and day (0 to days - 1, every day of every arm, zeros where
-- nothing happened). A row's day is its time at UTC as a date minus the experiment's
-- first_day. Per day, over the arm's assigned users:
--   retention            = active users (shown at least one slate that day) / users assigned;
--   churned_users        = users whose last slate of the experiment came before that day
--                          (users never shown one are not churned);
--   click_through        = clicks (impressions a viewing event cites) / impressions;
--   watch_minutes_per_user, completions_per_user (sessions with completion_ratio >= 0.9):
--                          all the users' viewing that day, organic and from slates, per
--                          user assigned;
--   slate_share          = minutes of sessions citing an impression of the experiment / all minutes;
--   catalogue_coverage   = distinct titles shown / titles of core.titles;
--   exposure_gini        = Gini coefficient of impressions over every title of core.titles,
--                          zeros included: 2 * sum(rank * n) / (N * total) - (N + 1) / N,
--                          titles ranked 1 .. N by impressions ascending (the unshown first);
--   intra_list_diversity = mean over the day's slates of their mean pairwise genre distance;
--   homogenization       = mean pairwise Jaccard overlap of cumulative consumption sets
--                          (int_experiment_homogenization: a sample of 200 users per arm);
--   regret               = mean over the day's slates of oracle_utility - slate_utility.
with

experiments as (
    select * from {{ ref('experiments') }}
),

arms as (
    select * from {{ ref('experiment_arms') }}
),

titles as (
    select * from {{ ref('titles') }}
),

outcomes as (
    select * from {{ ref('experiment_user_outcomes') }}
),

user_days as (
    select * from {{ ref('int_experiment_user_days') }}
),

shown as (
    select * from {{ ref('int_experiment_impressions') }}
),

slates as (
    select * from {{ ref('int_experiment_slates') }}
),

homogenization as (
    select * from {{ ref('int_experiment_homogenization') }}
),

catalogue as (
    select count(*) as title_count
    from titles
),

arm_days as (
    select
        arms.experiment_id,
        arms.arm,
        arms.is_control,
        day_numbers.experiment_day,
        experiments.first_day + day_numbers.experiment_day as experiment_date
    from arms
    inner join experiments on arms.experiment_id = experiments.experiment_id
    cross join lateral generate_series(0, experiments.days - 1) as day_numbers (experiment_day)
),

arm_users as (
    select
        experiment_id,
        arm,
        count(*) as users_assigned
    from outcomes
    group by experiment_id, arm
),

-- users by the day of their last slate; churned on day d: those whose last slate came before d
last_slates as (
    select
        experiment_id,
        arm,
        last_slate_day,
        count(*) as user_count
    from outcomes
    where last_slate_day is not null
    group by experiment_id, arm, last_slate_day
),

churned as (
    select
        arm_days.experiment_id,
        arm_days.arm,
        arm_days.experiment_day,
        sum(last_slates.user_count) as churned_users
    from arm_days
    inner join last_slates
        on
            arm_days.experiment_id = last_slates.experiment_id
            and arm_days.arm = last_slates.arm
            and arm_days.experiment_day > last_slates.last_slate_day
    group by arm_days.experiment_id, arm_days.arm, arm_days.experiment_day
),

activity as (
    select
        experiment_id,
        arm,
        experiment_day,
        count(*) filter (where slates > 0) as active_users,
        sum(slates) as slates,
        sum(impressions) as impressions,
        sum(clicks) as clicks,
        sum(watch_seconds) as watch_seconds,
        sum(slate_seconds) as slate_seconds,
        sum(completions) as completions
    from user_days
    group by experiment_id, arm, experiment_day
),

slate_quality as (
    select
        experiment_id,
        arm,
        experiment_day,
        avg(intra_list_diversity) as intra_list_diversity,
        avg(regret) as regret
    from slates
    group by experiment_id, arm, experiment_day
),

title_exposure as (
    select
        experiment_id,
        arm,
        experiment_day,
        content_id,
        count(*) as impressions
    from shown
    group by experiment_id, arm, experiment_day, content_id
),

ranked_exposure as (
    select
        experiment_id,
        arm,
        experiment_day,
        impressions,
        row_number() over (
            partition by experiment_id, arm, experiment_day order by impressions
        ) as shown_rank,
        count(*) over (partition by experiment_id, arm, experiment_day) as titles_shown
    from title_exposure
),

exposure as (
    select
        ranked_exposure.experiment_id,
        ranked_exposure.arm,
        ranked_exposure.experiment_day,
        max(ranked_exposure.titles_shown) as titles_shown,
        max(ranked_exposure.titles_shown)::numeric / max(catalogue.title_count) as catalogue_coverage,
        2.0 * sum(
            (catalogue.title_count - ranked_exposure.titles_shown + ranked_exposure.shown_rank)
            * ranked_exposure.impressions
        )
        / (max(catalogue.title_count) * sum(ranked_exposure.impressions))
        - (max(catalogue.title_count) + 1.0) / max(catalogue.title_count) as exposure_gini
    from ranked_exposure
    cross join catalogue
    group by ranked_exposure.experiment_id, ranked_exposure.arm, ranked_exposure.experiment_day
),

final as (
    select
        arm_days.experiment_id,
        arm_days.arm,
        arm_days.experiment_day::integer as day,  -- noqa: RF04
        arm_days.experiment_date as date,  -- noqa: RF04
        arm_days.is_control,
        coalesce(arm_users.users_assigned, 0)::integer as users_assigned,
        coalesce(activity.active_users, 0)::integer as active_users,
        round(coalesce(activity.active_users, 0)::numeric / nullif(arm_users.users_assigned, 0), 4)::numeric(5, 4)
            as retention,
        coalesce(churned.churned_users, 0)::integer as churned_users,
        coalesce(activity.slates, 0)::bigint as slates,
        coalesce(activity.impressions, 0)::bigint as impressions,
        coalesce(activity.clicks, 0)::bigint as clicks,
        round(activity.clicks::numeric / nullif(activity.impressions, 0), 4)::numeric(5, 4) as click_through,
        round(coalesce(activity.watch_seconds, 0) / 60.0 / nullif(arm_users.users_assigned, 0), 2)::numeric(12, 2)
            as watch_minutes_per_user,
        round(coalesce(activity.completions, 0)::numeric / nullif(arm_users.users_assigned, 0), 4)::numeric(10, 4)
            as completions_per_user,
        round(activity.slate_seconds::numeric / nullif(activity.watch_seconds, 0), 4)::numeric(5, 4) as slate_share,
        round(coalesce(exposure.catalogue_coverage, 0), 4)::numeric(5, 4) as catalogue_coverage,
        round(exposure.exposure_gini, 4)::numeric(5, 4) as exposure_gini,
        round(slate_quality.intra_list_diversity, 4)::numeric(5, 4) as intra_list_diversity,
        round(homogenization.homogenization, 4)::numeric(5, 4) as homogenization,
        round(slate_quality.regret, 4)::numeric(12, 4) as regret
    from arm_days
    left join arm_users
        on
            arm_days.experiment_id = arm_users.experiment_id
            and arm_days.arm = arm_users.arm
    left join activity
        on
            arm_days.experiment_id = activity.experiment_id
            and arm_days.arm = activity.arm
            and arm_days.experiment_day = activity.experiment_day
    left join churned
        on
            arm_days.experiment_id = churned.experiment_id
            and arm_days.arm = churned.arm
            and arm_days.experiment_day = churned.experiment_day
    left join slate_quality
        on
            arm_days.experiment_id = slate_quality.experiment_id
            and arm_days.arm = slate_quality.arm
            and arm_days.experiment_day = slate_quality.experiment_day
    left join exposure
        on
            arm_days.experiment_id = exposure.experiment_id
            and arm_days.arm = exposure.arm
            and arm_days.experiment_day = exposure.experiment_day
    left join homogenization
        on
            arm_days.experiment_id = homogenization.experiment_id
            and arm_days.arm = homogenization.arm
            and arm_days.experiment_day = homogenization.experiment_day
)

select * from final
