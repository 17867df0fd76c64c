{{ config(
    materialized=activity_materialization(),
    unique_key='rating_id',
    on_schema_change='append_new_columns',
    indexes=[{'columns': ['written_at']}, {'columns': ['user_id']}],
) }}

-- Loads only the rows written since the last build, like viewing_events. Every
-- rating is kept: a title rated again has a row per rating, and the one with the
-- latest rated_at counts. A writer that deletes activity (a user deleted) needs a
-- --full-refresh of this model, which `make run` does by itself.
with

ratings as (
    select * from {{ ref('stg_app__ratings') }}
),

final as (
    select
        ratings.rating_id,
        ratings.user_id,
        ratings.content_id,
        ratings.rating,
        ratings.rated_at,
        ratings.written_at,
        -- last: a warehouse built before it has it appended (on_schema_change)
        ratings.impression_id
    from ratings
    {{ written_since_last_build('ratings') }}
)

select * from final
