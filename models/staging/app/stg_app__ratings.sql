with

source as (
    select * from {{ source('app', 'ratings') }}
),

renamed as (
    select
        -- ids
        rating_id,
        user_id,
        content_id,
        impression_id,

        -- numbers
        rating::integer as rating,

        -- dates
        rated_at,
        written_at

    from source
)

select * from renamed
