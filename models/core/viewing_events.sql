{{ config(
    materialized='incremental',
    unique_key='event_id',
    on_schema_change='fail',
    indexes=[{'columns': ['written_at']}, {'columns': ['user_id']}],
) }}

-- Loads only the rows written since the last build. A writer that deletes
-- activity (a simulation run with --replace) needs a --full-refresh of this
-- model, which `make run` does by itself.
with

events as (
    select * from {{ ref('stg_app__viewing_events') }}
),

{% if is_incremental() %}
    already_loaded as (
        select coalesce(max(written_at), '-infinity') as loaded_until from {{ this }}
    ),
{% endif %}

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
        events.written_at
    from events
    {% if is_incremental() %}
        inner join already_loaded on events.written_at > already_loaded.loaded_until
    {% endif %}
)

select * from final
