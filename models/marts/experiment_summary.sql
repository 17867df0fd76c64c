-- One row per experiment and arm: the outcomes over the whole experiment (days 0 to
-- days - 1), and the lift of watch minutes per user over the control arm.
--   watch_minutes_per_user = the arm's users' minutes (all viewing) / users assigned, with a
--       95% Poisson-bootstrap interval over users: 500 replicates, in each a user weighs a
--       Poisson(1) draw (inverse CDF of a uniform number hashed from experiment, user and
--       replicate, so rebuilding gives the same interval); the interval is the 2.5th and
--       97.5th percentiles of the replicates' weighted means;
--   lift_watch_minutes     = (arm - control) / control; its interval from the replicates'
--       ratios of bootstrap means (arm's replicate mean / control's - 1, the control
--       resampled on its own users): 0 with [0, 0] for the control itself;
--   click_through, completions_per_user, slate_share, catalogue_coverage, exposure_gini,
--   intra_list_diversity, regret_per_slate: as in experiment_daily_metrics, over the whole
--       experiment; retention_last_day, churn_rate (churned users on the last day / users
--       assigned) and homogenization_last_day: the last day's row of experiment_daily_metrics.
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

daily as (
    select * from {{ ref('experiment_daily_metrics') }}
),

shown as (
    select * from {{ ref('int_experiment_impressions') }}
),

slates as (
    select * from {{ ref('int_experiment_slates') }}
),

catalogue as (
    select count(*) as title_count
    from titles
),

arm_totals as (
    select
        experiment_id,
        arm,
        count(*) as user_count,
        sum(watch_seconds) as watch_seconds,
        sum(slate_seconds) as slate_seconds,
        sum(completions) as completions,
        sum(impressions) as impressions,
        sum(clicks) as clicks
    from outcomes
    group by experiment_id, arm
),

estimates as (
    select
        arms.experiment_id,
        arms.arm,
        arms.is_control,
        coalesce(arm_totals.user_count, 0) as user_count,
        arm_totals.watch_seconds / 60.0 / nullif(arm_totals.user_count, 0) as watch_minutes_per_user,
        arm_totals.completions::numeric / nullif(arm_totals.user_count, 0) as completions_per_user,
        arm_totals.slate_seconds::numeric / nullif(arm_totals.watch_seconds, 0) as slate_share,
        arm_totals.clicks::numeric / nullif(arm_totals.impressions, 0) as click_through
    from arms
    left join arm_totals
        on
            arms.experiment_id = arm_totals.experiment_id
            and arms.arm = arm_totals.arm
),

controls as (
    select
        experiment_id,
        watch_minutes_per_user
    from estimates
    where is_control
),

-- the Poisson bootstrap: every user weighs a Poisson(1) draw in each of 500 replicates
replicates as (
    select replicate
    from generate_series(1, 500) as replicate_numbers (replicate)
),

draws as (
    select
        outcomes.experiment_id,
        outcomes.arm,
        replicates.replicate,
        outcomes.watch_seconds,
        {{ hash_uniform(
            "outcomes.experiment_id::text || ':' || outcomes.user_id::text || ':' || replicates.replicate::text"
        ) }} as uniform
    from outcomes
    cross join replicates
),

weighted_users as (
    select
        experiment_id,
        arm,
        replicate,
        watch_seconds,
        {{ poisson_one_draw('uniform') }} as weight
    from draws
),

replicate_means as (
    select
        experiment_id,
        arm,
        replicate,
        sum(weight * watch_seconds) / 60.0 / nullif(sum(weight), 0) as watch_minutes_per_user
    from weighted_users
    group by experiment_id, arm, replicate
),

replicate_lifts as (
    select
        replicate_means.experiment_id,
        replicate_means.arm,
        replicate_means.replicate,
        replicate_means.watch_minutes_per_user,
        replicate_means.watch_minutes_per_user / nullif(control_means.watch_minutes_per_user, 0) - 1 as lift
    from replicate_means
    inner join arms
        on
            replicate_means.experiment_id = arms.experiment_id
            and arms.is_control
    left join replicate_means as control_means
        on
            replicate_means.experiment_id = control_means.experiment_id
            and arms.arm = control_means.arm
            and replicate_means.replicate = control_means.replicate
),

intervals as (
    select
        experiment_id,
        arm,
        percentile_cont(0.025) within group (order by watch_minutes_per_user) as watch_minutes_ci_low,
        percentile_cont(0.975) within group (order by watch_minutes_per_user) as watch_minutes_ci_high,
        percentile_cont(0.025) within group (order by lift) as lift_ci_low,
        percentile_cont(0.975) within group (order by lift) as lift_ci_high
    from replicate_lifts
    group by experiment_id, arm
),

title_exposure as (
    select
        experiment_id,
        arm,
        content_id,
        count(*) as impressions
    from shown
    group by experiment_id, arm, content_id
),

ranked_exposure as (
    select
        experiment_id,
        arm,
        impressions,
        row_number() over (partition by experiment_id, arm order by impressions) as shown_rank,
        count(*) over (partition by experiment_id, arm) as titles_shown
    from title_exposure
),

exposure as (
    select
        ranked_exposure.experiment_id,
        ranked_exposure.arm,
        max(ranked_exposure.titles_shown)::numeric / max(catalogue.title_count) as catalogue_coverage,
        2.0 * sum(
            (catalogue.title_count - ranked_exposure.titles_shown + ranked_exposure.shown_rank)
            * ranked_exposure.impressions
        )
        / (max(catalogue.title_count) * sum(ranked_exposure.impressions))
        - (max(catalogue.title_count) + 1.0) / max(catalogue.title_count) as exposure_gini
    from ranked_exposure
    cross join catalogue
    group by ranked_exposure.experiment_id, ranked_exposure.arm
),

slate_quality as (
    select
        experiment_id,
        arm,
        avg(intra_list_diversity) as intra_list_diversity,
        avg(regret) as regret_per_slate
    from slates
    group by experiment_id, arm
),

last_days as (
    select
        daily.experiment_id,
        daily.arm,
        daily.retention,
        daily.churned_users,
        daily.users_assigned,
        daily.homogenization
    from daily
    inner join experiments
        on
            daily.experiment_id = experiments.experiment_id
            and daily.day = experiments.days - 1
),

final as (
    select
        estimates.experiment_id,
        estimates.arm,
        estimates.is_control,
        estimates.user_count::integer as users,  -- noqa: RF04
        round(coalesce(estimates.watch_minutes_per_user, 0), 2)::numeric(12, 2) as watch_minutes_per_user,
        round(intervals.watch_minutes_ci_low::numeric, 2)::numeric(12, 2) as watch_minutes_ci_low,
        round(intervals.watch_minutes_ci_high::numeric, 2)::numeric(12, 2) as watch_minutes_ci_high,
        round(
            (estimates.watch_minutes_per_user - controls.watch_minutes_per_user)
            / nullif(controls.watch_minutes_per_user, 0),
            4
        )::numeric(12, 4) as lift_watch_minutes,
        round(intervals.lift_ci_low::numeric, 4)::numeric(12, 4) as lift_ci_low,
        round(intervals.lift_ci_high::numeric, 4)::numeric(12, 4) as lift_ci_high,
        round(estimates.click_through, 4)::numeric(5, 4) as click_through,
        round(coalesce(estimates.completions_per_user, 0), 4)::numeric(10, 4) as completions_per_user,
        last_days.retention as retention_last_day,
        round(last_days.churned_users::numeric / nullif(last_days.users_assigned, 0), 4)::numeric(5, 4)
            as churn_rate,
        round(estimates.slate_share, 4)::numeric(5, 4) as slate_share,
        round(coalesce(exposure.catalogue_coverage, 0), 4)::numeric(5, 4) as catalogue_coverage,
        round(exposure.exposure_gini, 4)::numeric(5, 4) as exposure_gini,
        round(slate_quality.intra_list_diversity, 4)::numeric(5, 4) as intra_list_diversity,
        last_days.homogenization as homogenization_last_day,
        round(slate_quality.regret_per_slate, 4)::numeric(12, 4) as regret_per_slate
    from estimates
    left join controls on estimates.experiment_id = controls.experiment_id
    left join intervals
        on
            estimates.experiment_id = intervals.experiment_id
            and estimates.arm = intervals.arm
    left join exposure
        on
            estimates.experiment_id = exposure.experiment_id
            and estimates.arm = exposure.arm
    left join slate_quality
        on
            estimates.experiment_id = slate_quality.experiment_id
            and estimates.arm = slate_quality.arm
    left join last_days
        on
            estimates.experiment_id = last_days.experiment_id
            and estimates.arm = last_days.arm
)

select * from final
