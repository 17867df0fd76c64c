with

source as (
    select * from {{ source('predictions', 'model_runs') }}
),

renamed as (
    select
        -- ids
        run_id,

        -- text
        model,
        status,
        error,

        -- json
        parameters,
        data_snapshot,
        metrics,
        timings,

        -- numbers
        user_count,
        row_count,

        -- booleans
        is_current,

        -- dates
        started_at,
        finished_at,
        published_at

    from source
)

select * from renamed
