with

users as (
    select * from {{ ref('users') }}
),

events as (
    select * from {{ ref('viewing_events') }}
),

catalogue as (
    select * from {{ ref('catalogue') }}
),

activity as (
    select
        events.user_id,
        count(*) as sessions,
        count(distinct events.content_id) as titles_watched,
        round(sum(events.seconds_watched) / 3600.0, 2) as hours_watched,
        count(*) filter (where catalogue.content_type = 'show') as show_sessions,
        count(events.rating) as ratings_given,
        round(avg(events.rating), 2) as mean_rating,
        count(distinct events.started_at::date) as active_days,
        min(events.started_at) as first_session_at,
        max(events.started_at) as last_session_at,
        mode() within group (order by catalogue.main_genre_id) as most_watched_genre_id
    from events
    inner join catalogue on events.content_id = catalogue.content_id
    group by events.user_id
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
        coalesce(activity.active_days, 0) as active_days,
        activity.first_session_at,
        activity.last_session_at,
        activity.most_watched_genre_id
    from users
    left join activity on users.user_id = activity.user_id
)

select * from final
