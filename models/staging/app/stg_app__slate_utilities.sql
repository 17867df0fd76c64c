with

source as (
    select * from {{ source('app', 'slate_utilities') }}
),

renamed as (
    select
        -- ids
        slate_id,
        experiment_id,
        user_id,

        -- numbers
        slate_utility,
        oracle_utility,

        -- dates
        written_at

    from source
)

select * from renamed
