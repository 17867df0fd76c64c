-- the content_id index serves the API's similar titles (the viewers of one title)
{{ config(
    materialized='incremental',
    incremental_strategy='delete+insert',
    unique_key='user_id',
    on_schema_change='fail',
    indexes=[{'columns': ['user_id', 'content_id'], 'unique': true}, {'columns': ['content_id']}],
) }}

-- Implicit feedback per user and title, the recommenders' input:
--   engagement = sum of completion ratios (a watched-through film is 1, a binged
--                show one per episode), so watch fraction and repeat views add up;
--   recency    = 0.5 ^ (days from this title's last view to the user's latest
--                session / 30): measured on the user's own clock, so a user's
--                rows change only when that user watches something new;
--   confidence = 1 + 4 * ln(1 + engagement) * (0.5 + 0.5 * recency).
-- Incremental by user: a build recomputes only the users with newly loaded events.
with

events as (
    select * from {{ ref('viewing_events') }}
),

{% if is_incremental() %}
    touched_users as (
        select distinct events.user_id
        from events
        {{ written_since_last_build('events', loaded_column='last_written_at') }}
    ),
{% endif %}

user_events as (
    select events.*
    from events
    {% if is_incremental() %}
        inner join touched_users on events.user_id = touched_users.user_id
    {% endif %}
),

pairs as (
    select
        user_id,
        content_id,
        count(*) as view_count,
        sum(seconds_watched) as seconds_watched,
        sum(completion_ratio) as engagement,
        max(completion_ratio) as best_completion,
        count(rating) as rating_count,
        avg(rating) as mean_rating,
        min(started_at) as first_watched_at,
        max(started_at) as last_watched_at,
        max(written_at) as last_written_at
    from user_events
    group by user_id, content_id
),

scored as (
    select
        *,
        extract(epoch from max(last_watched_at) over (partition by user_id) - last_watched_at)
        / 86400 as days_since_last_view
    from pairs
),

final as (
    select
        user_id,
        content_id,
        view_count,
        seconds_watched,
        round(engagement, 4) as engagement,
        best_completion,
        rating_count,
        round(mean_rating, 2) as mean_rating,
        first_watched_at,
        last_watched_at,
        round(days_since_last_view::numeric, 2) as days_since_last_view,
        round(
            (1 + 4 * ln(1 + engagement) * (0.5 + 0.5 * power(0.5, days_since_last_view / 30)))::numeric, 4
        ) as confidence,
        last_written_at
    from scored
)

select * from final
