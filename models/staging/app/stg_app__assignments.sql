with

source as (
    select * from {{ source('app', 'assignments') }}
),

renamed as (
    select
        -- ids
        experiment_id,
        user_id,
        arm,

        -- dates
        assigned_at,
        written_at

    from source
)

select * from renamed
