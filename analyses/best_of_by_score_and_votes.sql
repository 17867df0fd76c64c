-- Best-of titles by score, then votes, with how the lists and the catalogue agree.
with

catalogue as (
    select * from {{ ref('catalogue') }}
),

best_of as (
    select
        content_id,
        title,
        content_type,
        release_year,
        genre_names,
        country_names,
        best_of_rank,
        best_of_score,
        imdb_score,
        imdb_votes,
        is_best_of_year
    from catalogue
    where cardinality(best_of_lists) > 0
)

select * from best_of
order by best_of_score desc, imdb_votes desc nulls last, title asc
