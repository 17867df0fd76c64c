with

arms as (
    select * from {{ ref('stg_app__experiment_arms') }}
),

final as (
    select
        arms.experiment_id,
        arms.arm,
        arms.model,
        arms.parameters,
        arms.run_id,
        arms.share,
        arms.is_control
    from arms
)

select * from final
