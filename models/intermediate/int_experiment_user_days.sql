-- One row per experiment, assigned user and experiment day (0 to days - 1) on which the
-- user watched something or was shown a slate: all of the user's viewing that day
-- (organic and from slates) and the slates the user's arm showed.
with

experiments as (
    select * from {{ ref('experiments') }}
),

assignments as (
    select * from {{ ref('assignments') }}
),

events as (
    select * from {{ ref('viewing_events') }}
),

impressions as (
    select * from {{ ref('impressions') }}
),

slates as (
    select * from {{ ref('int_experiment_slates') }}
),

-- every viewing session of an assigned user within the experiment's days, and whether it
-- followed an impression of this experiment
assigned_events as (
    select
        assignments.experiment_id,
        assignments.arm,
        assignments.user_id,
        (events.started_at at time zone 'UTC')::date - experiments.first_day as experiment_day,
        events.seconds_watched,
        events.completion_ratio,
        impressions.impression_id is not null as is_from_slate,
        experiments.days
    from assignments
    inner join experiments on assignments.experiment_id = experiments.experiment_id
    inner join events on assignments.user_id = events.user_id
    left join impressions
        on
            events.impression_id = impressions.impression_id
            and assignments.experiment_id = impressions.experiment_id
),

viewing as (
    select
        experiment_id,
        arm,
        user_id,
        experiment_day,
        count(*) as sessions,
        sum(seconds_watched) as watch_seconds,
        coalesce(sum(seconds_watched) filter (where is_from_slate), 0) as slate_seconds,
        count(*) filter (where completion_ratio >= 0.9) as completions
    from assigned_events
    where experiment_day between 0 and days - 1
    group by experiment_id, arm, user_id, experiment_day
),

shown as (
    select
        experiment_id,
        arm,
        user_id,
        experiment_day,
        count(*) as slates,
        sum(impressions) as impressions,
        sum(clicks) as clicks
    from slates
    group by experiment_id, arm, user_id, experiment_day
),

final as (
    select
        coalesce(viewing.experiment_id, shown.experiment_id) as experiment_id,
        coalesce(viewing.arm, shown.arm) as arm,
        coalesce(viewing.user_id, shown.user_id) as user_id,
        coalesce(viewing.experiment_day, shown.experiment_day) as experiment_day,
        coalesce(viewing.sessions, 0) as sessions,
        coalesce(viewing.watch_seconds, 0) as watch_seconds,
        coalesce(viewing.slate_seconds, 0) as slate_seconds,
        coalesce(viewing.completions, 0) as completions,
        coalesce(shown.slates, 0) as slates,
        coalesce(shown.impressions, 0) as impressions,
        coalesce(shown.clicks, 0) as clicks
    from viewing
    full outer join shown
        on
            viewing.experiment_id = shown.experiment_id
            and viewing.user_id = shown.user_id
            and viewing.experiment_day = shown.experiment_day
)

select * from final
