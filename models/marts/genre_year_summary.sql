with

catalogue as (
    select * from {{ ref('catalogue') }}
),

title_genres as (
    select * from {{ ref('title_genres') }}
),

genres as (
    select * from {{ ref('genres') }}
),

final as (
    select
        title_genres.genre_id,
        genres.genre_name,
        catalogue.release_year,
        count(*) as titles,
        count(*) filter (where catalogue.content_type = 'movie') as movies,
        count(*) filter (where catalogue.content_type = 'show') as shows,
        count(*) filter (where title_genres.genre_position = 1) as titles_with_main_genre,
        round(avg(catalogue.imdb_score), 2) as avg_imdb_score,
        coalesce(sum(catalogue.imdb_votes), 0)::bigint as imdb_votes,
        count(*) filter (where cardinality(catalogue.best_of_lists) > 0) as best_of_titles
    from title_genres
    inner join catalogue on title_genres.content_id = catalogue.content_id
    inner join genres on title_genres.genre_id = genres.genre_id
    group by title_genres.genre_id, genres.genre_name, catalogue.release_year
)

select * from final
