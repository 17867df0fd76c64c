with

source as (
    select * from {{ source('app', 'experiments') }}
),

renamed as (
    select
        -- ids
        experiment_id,

        -- text
        name as experiment_name,
        status,
        configuration,

        -- numbers
        seed,
        days,

        -- dates
        first_day,
        created_at,
        finished_at,
        written_at

    from source
)

select * from renamed
