-- the content_id index serves the API's similar titles (the viewers of one title)
{{ config(
    materialized=activity_materialization(),
    incremental_strategy='delete+insert',
    unique_key='user_id',
    on_schema_change='fail',
    indexes=[{'columns': ['user_id', 'content_id'], 'unique': true}, {'columns': ['content_id']}],
) }}

-- Feedback per user and title, the recommenders' input, from viewing and explicit ratings:
--   engagement = sum of completion ratios (a watched-through film is 1, a binged
--                show one per episode), so watch fraction and repeat views add up;
--   recency    = 0.5 ^ (days from this title's last view to the user's latest
--                session / 30): measured on the user's own clock, so a user's
--                rows change only when that user watches something new;
--   stars      = the user's latest explicit rating of the title (core.ratings);
--   confidence = 1 + 4 * ln(1 + engagement) * (0.5 + 0.5 * recency)   (the viewing part, 0 if never watched)
--                  + (stars - 1) / 2                                   (the rating part, 0 if never rated),
-- so a rating adds 0 (1 star) to 2 (5 stars), a title rated but never watched gets a
-- row of confidence 1 to 3, and every weight is at least 1.
-- Incremental by user: a build recomputes only the users with newly loaded events or ratings.
with

events as (
    select * from {{ ref('viewing_events') }}
),

ratings as (
    select * from {{ ref('ratings') }}
),

{% if is_incremental() %}
    touched_users as (
        select events.user_id
        from events
        {{ written_since_last_build('events', loaded_column='last_written_at') }}
        union
        select ratings.user_id
        from ratings
        {{ written_since_last_build('ratings', loaded_column='last_written_at') }}
    ),
{% endif %}

user_events as (
    select events.*
    from events
    {% if is_incremental() %}
        inner join touched_users on events.user_id = touched_users.user_id
    {% endif %}
),

user_ratings as (
    select ratings.*
    from ratings
    {% if is_incremental() %}
        inner join touched_users on ratings.user_id = touched_users.user_id
    {% endif %}
),

viewed as (
    select
        user_id,
        content_id,
        count(*) as view_count,
        sum(seconds_watched) as seconds_watched,
        sum(completion_ratio) as engagement,
        max(completion_ratio) as best_completion,
        count(rating) as rating_count,
        sum(rating) as rating_sum,
        min(started_at) as first_watched_at,
        max(started_at) as last_watched_at,
        max(written_at) as last_written_at
    from user_events
    group by user_id, content_id
),

-- every rating counts in rating_count and mean_rating; the latest one (by rated_at) gives the stars
rated as (
    select
        user_id,
        content_id,
        count(*) as rating_count,
        sum(rating) as rating_sum,
        {{ latest_value('rating', ['rated_at', 'rating_id']) }} as latest_rating,
        max(rated_at) as last_rated_at,
        max(written_at) as last_written_at
    from user_ratings
    group by user_id, content_id
),

pairs as (
    select
        coalesce(viewed.user_id, rated.user_id) as user_id,
        coalesce(viewed.content_id, rated.content_id) as content_id,
        coalesce(viewed.view_count, 0) as view_count,
        coalesce(viewed.seconds_watched, 0) as seconds_watched,
        coalesce(viewed.engagement, 0) as engagement,
        viewed.best_completion,
        coalesce(viewed.rating_count, 0) + coalesce(rated.rating_count, 0) as rating_count,
        coalesce(viewed.rating_sum, 0) + coalesce(rated.rating_sum, 0) as rating_sum,
        rated.latest_rating,
        viewed.first_watched_at,
        viewed.last_watched_at,
        rated.last_rated_at,
        greatest(viewed.last_written_at, rated.last_written_at) as last_written_at
    from viewed
    full outer join rated on viewed.user_id = rated.user_id and viewed.content_id = rated.content_id
),

scored as (
    select
        *,
        {{ seconds_between('last_watched_at', 'max(last_watched_at) over (partition by user_id)') }}
        / 86400 as days_since_last_view
    from pairs
),

final as (
    select
        user_id,
        content_id,
        view_count,
        seconds_watched,
        round(engagement, 4)::numeric(12, 4) as engagement,
        best_completion::numeric(5, 4) as best_completion,
        rating_count,
        round(rating_sum::numeric / nullif(rating_count, 0), 2)::numeric(3, 2) as mean_rating,
        latest_rating,
        first_watched_at,
        last_watched_at,
        last_rated_at,
        greatest(last_watched_at, last_rated_at) as last_interaction_at,
        {{ round_half_up('days_since_last_view', 2) }}::numeric(10, 2) as days_since_last_view,
        {{ round_half_up(
            '1
            + coalesce(4 * ln(1 + engagement) * (0.5 + 0.5 * power(0.5, days_since_last_view / 30)), 0)
            + coalesce((latest_rating - 1) / 2.0, 0)',
            4
        ) }}::numeric(10, 4) as confidence,
        last_written_at
    from scored
)

select * from final
