with

source as (
    select * from {{ source('app', 'impressions') }}
),

renamed as (
    select
        -- ids
        impression_id,
        user_id,
        content_id,
        experiment_id,
        arm,
        run_id,
        slate_id,

        -- numbers
        position::integer as position,  -- noqa: RF04

        -- dates
        shown_at,
        written_at

    from source
)

select * from renamed
