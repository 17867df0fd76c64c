with

source as (
    select * from {{ source('app', 'viewing_events') }}
),

renamed as (
    select
        -- ids
        event_id,
        user_id,
        content_id,
        impression_id,

        -- text
        device,

        -- numbers
        seconds_watched,
        completion_ratio::numeric(5, 4) as completion_ratio,
        rating::integer as rating,

        -- dates
        started_at,
        written_at

    from source
)

select * from renamed
