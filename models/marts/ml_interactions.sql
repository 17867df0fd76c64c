-- Implicit feedback per user and title, the recommenders' input:
--   engagement = sum of completion ratios (a watched-through film is 1, a binged
--                show one per episode), so watch fraction and repeat views add up;
--   recency    = 0.5 ^ (days since the last view / 30), days counted back from
--                the latest event in the data, so a rebuild is reproducible;
--   confidence = 1 + 4 * ln(1 + engagement) * (0.5 + 0.5 * recency).
with

events as (
    select * from {{ ref('viewing_events') }}
),

observed_period as (
    select max(events.started_at) as observed_until from events
),

pairs as (
    select
        user_id,
        content_id,
        count(*) as view_count,
        sum(seconds_watched) as seconds_watched,
        sum(completion_ratio) as engagement,
        max(completion_ratio) as best_completion,
        avg(rating) as mean_rating,
        min(started_at) as first_watched_at,
        max(started_at) as last_watched_at
    from events
    group by user_id, content_id
),

scored as (
    select
        pairs.*,
        extract(epoch from observed_period.observed_until - pairs.last_watched_at) / 86400 as days_since_last_view
    from pairs
    cross join observed_period
),

final as (
    select
        user_id,
        content_id,
        view_count,
        seconds_watched,
        round(engagement, 4) as engagement,
        best_completion,
        round(mean_rating, 2) as mean_rating,
        first_watched_at,
        last_watched_at,
        round(days_since_last_view::numeric, 2) as days_since_last_view,
        round(
            (1 + 4 * ln(1 + engagement) * (0.5 + 0.5 * power(0.5, days_since_last_view / 30)))::numeric, 4
        ) as confidence
    from scored
)

select * from final
