with

titles as (
    select * from {{ ref('titles') }}
),

title_genres as (
    select * from {{ ref('int_title_genres') }}
),

title_countries as (
    select * from {{ ref('int_title_countries') }}
),

title_people as (
    select * from {{ ref('int_title_people') }}
),

title_rankings as (
    select * from {{ ref('title_rankings') }}
),

rankings_per_title as (
    select
        content_id,
        array_agg(ranking_list order by ranking_list) as best_of_lists,
        min(list_rank) filter (where ranking_list in ('best_movies', 'best_shows')) as best_of_rank,
        max(imdb_score) as best_of_score,
        bool_or(ranking_list in ('best_movie_by_year', 'best_show_by_year')) as is_best_of_year
    from title_rankings
    where content_id is not null
    group by content_id
),

final as (
    select
        titles.content_id,
        titles.title,
        titles.content_type,
        titles.release_year,
        (titles.release_year / 10 * 10)::integer as release_decade,
        titles.age_certification,
        titles.runtime_minutes,
        titles.seasons,
        titles.imdb_id,
        titles.imdb_score,
        titles.imdb_votes,
        coalesce(title_genres.genre_ids, '{}') as genre_ids,
        title_genres.genre_ids[1] as main_genre_id,
        title_genres.genre_names,
        coalesce(title_countries.country_codes, '{}') as country_codes,
        title_countries.country_codes[1] as main_country_code,
        title_countries.country_names,
        title_people.directors,
        title_people.top_cast,
        coalesce(title_people.cast_size, 0) as cast_size,
        coalesce(rankings_per_title.best_of_lists, '{}') as best_of_lists,
        rankings_per_title.best_of_rank,
        rankings_per_title.best_of_score,
        coalesce(rankings_per_title.is_best_of_year, false) as is_best_of_year
    from titles
    left join title_genres on titles.content_id = title_genres.content_id
    left join title_countries on titles.content_id = title_countries.content_id
    left join title_people on titles.content_id = title_people.content_id
    left join rankings_per_title on titles.content_id = rankings_per_title.content_id
)

select * from final
