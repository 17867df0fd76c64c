with

source as (
    select * from {{ source('app', 'experiment_arms') }}
),

renamed as (
    select
        -- ids
        experiment_id,
        arm,
        run_id,

        -- text
        model,
        parameters,

        -- numbers
        share,

        -- booleans
        is_control

    from source
)

select * from renamed
