{{ config(
    materialized=activity_materialization(),
    unique_key='event_id',
    on_schema_change='append_new_columns',
    indexes=[{'columns': ['written_at']}, {'columns': ['user_id']}],
) }}

-- Loads only the rows written since the last build. A writer that deletes
-- activity (a simulation run with --replace) needs a --full-refresh of this
-- model, which `make run` does by itself.
with

events as (
    select * from {{ ref('stg_app__viewing_events') }}
),

final as (
    select
        events.event_id,
        events.user_id,
        events.content_id,
        events.started_at,
        events.seconds_watched,
        events.completion_ratio,
        events.rating,
        events.device,
        events.written_at,
        -- last: a warehouse built before it has it appended (on_schema_change)
        events.impression_id
    from events
    {{ written_since_last_build('events') }}
)

select * from final
