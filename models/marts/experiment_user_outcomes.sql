-- One row per experiment and assigned user: what the user did over the experiment's days
-- (all viewing, organic and from slates) and what the user's arm showed. The per-user
-- outcomes the experiment's marts share (experiment_summary's bootstrap resamples them).
with

arms as (
    select * from {{ ref('experiment_arms') }}
),

assignments as (
    select * from {{ ref('assignments') }}
),

user_days as (
    select * from {{ ref('int_experiment_user_days') }}
),

totals as (
    select
        experiment_id,
        user_id,
        sum(sessions) as sessions,
        sum(watch_seconds) as watch_seconds,
        sum(slate_seconds) as slate_seconds,
        sum(completions) as completions,
        sum(slates) as slates,
        sum(impressions) as impressions,
        sum(clicks) as clicks,
        count(*) filter (where slates > 0) as active_days,
        min(experiment_day) filter (where slates > 0) as first_slate_day,
        max(experiment_day) filter (where slates > 0) as last_slate_day
    from user_days
    group by experiment_id, user_id
),

final as (
    select
        assignments.experiment_id,
        assignments.user_id,
        assignments.arm,
        arms.is_control,
        coalesce(totals.sessions, 0)::bigint as sessions,
        coalesce(totals.watch_seconds, 0)::bigint as watch_seconds,
        coalesce(totals.slate_seconds, 0)::bigint as slate_seconds,
        coalesce(totals.completions, 0)::bigint as completions,
        coalesce(totals.slates, 0)::bigint as slates,
        coalesce(totals.impressions, 0)::bigint as impressions,
        coalesce(totals.clicks, 0)::bigint as clicks,
        coalesce(totals.active_days, 0)::integer as active_days,
        totals.first_slate_day::integer as first_slate_day,
        totals.last_slate_day::integer as last_slate_day
    from assignments
    inner join arms
        on
            assignments.experiment_id = arms.experiment_id
            and assignments.arm = arms.arm
    left join totals
        on
            assignments.experiment_id = totals.experiment_id
            and assignments.user_id = totals.user_id
)

select * from final
