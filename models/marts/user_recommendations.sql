{{ config(materialized='view') }}

-- A view, not a table: it always shows the run that is current now, so a publish or a
-- rollback is visible at once without a dbt build. "Current" is defined once, by the
-- publisher's view predictions.current_recommendations.
with

current_recommendations as (
    select * from {{ ref('stg_predictions__current_recommendations') }}
),

model_runs as (
    select * from {{ ref('stg_predictions__model_runs') }}
),

catalogue as (
    select * from {{ ref('catalogue') }}
),

final as (
    select
        current_recommendations.user_id,
        current_recommendations.recommendation_rank,
        current_recommendations.content_id,
        catalogue.title,
        catalogue.content_type,
        catalogue.release_year,
        catalogue.genre_names,
        catalogue.imdb_score,
        current_recommendations.score,
        current_recommendations.reason,
        current_recommendations.run_id,
        model_runs.model,
        model_runs.published_at
    from current_recommendations
    inner join model_runs on current_recommendations.run_id = model_runs.run_id
    left join catalogue on current_recommendations.content_id = catalogue.content_id
)

select * from final
