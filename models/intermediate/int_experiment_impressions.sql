-- The impressions shown in an experiment within its days, each with its experiment day
-- ((shown_at at UTC)::date - first_day, 0 to days - 1) and whether a viewing event cites it
-- (a click).
with

experiments as (
    select * from {{ ref('experiments') }}
),

impressions as (
    select * from {{ ref('impressions') }}
),

events as (
    select * from {{ ref('viewing_events') }}
),

clicked as (
    select distinct events.impression_id
    from events
    where events.impression_id is not null
),

dated as (
    select
        impressions.impression_id,
        impressions.experiment_id,
        impressions.arm,
        impressions.user_id,
        impressions.content_id,
        impressions.slate_id,
        impressions.position,
        impressions.shown_at,
        experiments.days,
        (impressions.shown_at at time zone 'UTC')::date - experiments.first_day as experiment_day
    from impressions
    inner join experiments on impressions.experiment_id = experiments.experiment_id
),

final as (
    select
        dated.impression_id,
        dated.experiment_id,
        dated.arm,
        dated.user_id,
        dated.content_id,
        dated.slate_id,
        dated.position,
        dated.shown_at,
        dated.experiment_day,
        clicked.impression_id is not null as is_clicked
    from dated
    left join clicked on dated.impression_id = clicked.impression_id
    where dated.experiment_day between 0 and dated.days - 1
)

select * from final
