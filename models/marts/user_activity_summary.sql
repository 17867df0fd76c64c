with

users as (
    select * from {{ ref('users') }}
),

interactions as (
    select * from {{ ref('ml_interactions') }}
),

catalogue as (
    select * from {{ ref('catalogue') }}
),

-- built from ml_interactions (one row per user and title watched or rated), not from every event
activity as (
    select
        interactions.user_id,
        sum(interactions.view_count) as sessions,
        count(*) filter (where interactions.view_count > 0) as titles_watched,
        round(sum(interactions.seconds_watched) / 3600.0, 2) as hours_watched,
        sum(interactions.view_count) filter (where catalogue.content_type = 'show') as show_sessions,
        sum(interactions.rating_count) as ratings_given,
        round(
            sum(interactions.mean_rating * interactions.rating_count) / nullif(sum(interactions.rating_count), 0), 2
        ) as mean_rating,
        count(interactions.latest_rating) as titles_rated,
        max(interactions.last_rated_at) as last_rated_at,
        min(interactions.first_watched_at) as first_session_at,
        max(interactions.last_watched_at) as last_session_at,
        mode() within group (order by catalogue.main_genre_id) filter (
            where interactions.view_count > 0
        ) as most_watched_genre_id
    from interactions
    inner join catalogue on interactions.content_id = catalogue.content_id
    group by interactions.user_id
),

final as (
    select
        users.user_id,
        users.age_band,
        users.country_code,
        users.plan,
        users.device,
        users.signup_date,
        coalesce(activity.sessions, 0) as sessions,
        coalesce(activity.titles_watched, 0) as titles_watched,
        coalesce(activity.hours_watched, 0) as hours_watched,
        coalesce(activity.show_sessions, 0) as show_sessions,
        coalesce(activity.ratings_given, 0) as ratings_given,
        activity.mean_rating,
        coalesce(activity.titles_rated, 0) as titles_rated,
        activity.last_rated_at,
        activity.first_session_at,
        activity.last_session_at,
        activity.most_watched_genre_id
    from users
    left join activity on users.user_id = activity.user_id
)

select * from final
