with

source as (
    select * from {{ source('predictions', 'current_recommendations') }}
),

renamed as (
    select
        -- ids
        run_id,
        user_id,
        content_id,

        -- text
        reason,

        -- numbers
        score,
        rank as recommendation_rank

    from source
)

select * from renamed
