{{ config(materialized='view') }}

-- A view, not a table: it always shows the run that is current now, so a publish or a
-- rollback is visible at once without a dbt build.
with

model_runs as (
    select * from {{ ref('stg_predictions__model_runs') }}
),

recommendations as (
    select * from {{ ref('stg_predictions__recommendations') }}
),

catalogue as (
    select * from {{ ref('catalogue') }}
),

current_run as (
    select
        run_id,
        model,
        published_at
    from model_runs
    where is_current
),

current_recommendations as (
    select
        recommendations.*,
        current_run.model,
        current_run.published_at
    from recommendations
    inner join current_run on recommendations.run_id = current_run.run_id
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
        current_recommendations.model,
        current_recommendations.published_at
    from current_recommendations
    left join catalogue on current_recommendations.content_id = catalogue.content_id
)

select * from final
