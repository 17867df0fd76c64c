-- One row per user and experiment: rebuilt whole, so its foreign keys (to arms and users) hold.
with

assignments as (
    select * from {{ ref('stg_app__assignments') }}
),

final as (
    select
        assignments.experiment_id,
        assignments.user_id,
        assignments.arm,
        assignments.assigned_at,
        assignments.written_at
    from assignments
)

select * from final
