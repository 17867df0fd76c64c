{{ config(
    materialized='incremental',
    unique_key='slate_id',
    on_schema_change='fail',
    indexes=[{'columns': ['written_at']}, {'columns': ['experiment_id']}],
) }}

-- Loads only the rows written since the last build, like impressions (a deleted experiment
-- needs a --full-refresh of both).
with

utilities as (
    select * from {{ ref('stg_app__slate_utilities') }}
),

final as (
    select
        utilities.slate_id,
        utilities.experiment_id,
        utilities.user_id,
        utilities.slate_utility,
        utilities.oracle_utility,
        utilities.written_at
    from utilities
    {{ written_since_last_build('utilities') }}
)

select * from final
