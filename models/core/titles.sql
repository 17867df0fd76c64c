with

titles as (
    select * from {{ ref('stg_netflix__titles') }}
),

final as (
    select
        content_id,
        title,
        content_type,
        release_year,
        age_certification,
        runtime_minutes,
        seasons,
        imdb_id,
        imdb_score,
        imdb_votes
    from titles
)

select * from final
