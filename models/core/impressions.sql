{{ config(
    materialized='incremental',
    unique_key='impression_id',
    on_schema_change='fail',
    indexes=[{'columns': ['written_at']}, {'columns': ['user_id']}, {'columns': ['experiment_id', 'shown_at']}],
) }}

-- Loads only the rows written since the last build, like viewing_events. A writer that
-- deletes impressions (an experiment deleted or run again with --replace) needs a
-- --full-refresh of this model.
with

impressions as (
    select * from {{ ref('stg_app__impressions') }}
),

final as (
    select
        impressions.impression_id,
        impressions.user_id,
        impressions.content_id,
        impressions.experiment_id,
        impressions.arm,
        impressions.run_id,
        impressions.slate_id,
        impressions.position,
        impressions.shown_at,
        impressions.written_at
    from impressions
    {{ written_since_last_build('impressions') }}
)

select * from final
