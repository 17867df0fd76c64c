-- Small (one row per experiment) and updated in place (status, finished_at): rebuilt whole.
with

experiments as (
    select * from {{ ref('stg_app__experiments') }}
),

final as (
    select
        experiments.experiment_id,
        experiments.experiment_name,
        experiments.configuration,
        experiments.seed,
        experiments.first_day,
        experiments.days,
        experiments.status,
        experiments.created_at,
        experiments.finished_at,
        experiments.written_at
    from experiments
)

select * from final
