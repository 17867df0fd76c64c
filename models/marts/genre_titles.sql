-- The title-genre bridge with the title's scores: the grain at which a mean or a
-- vote-weighted IMDb score per genre is correct (a title counts once under each genre).
with

title_genres as (
    select * from {{ ref('title_genres') }}
),

catalogue as (
    select * from {{ ref('catalogue') }}
),

final as (
    select
        title_genres.genre_id,
        title_genres.content_id,
        title_genres.genre_position,
        catalogue.release_year,
        catalogue.imdb_score,
        catalogue.imdb_votes
    from title_genres
    inner join catalogue on title_genres.content_id = catalogue.content_id
)

select * from final
