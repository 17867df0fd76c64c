-- the API looks titles up by content_id on every recommendations request
{{ config(indexes=[{'columns': ['content_id'], 'unique': true}]) }}

with

titles as (
    select * from {{ ref('titles') }}
),

title_genres as (
    select * from {{ ref('title_genres') }}
),

genres as (
    select * from {{ ref('genres') }}
),

title_production_countries as (
    select * from {{ ref('title_production_countries') }}
),

countries as (
    select * from {{ ref('countries') }}
),

credits as (
    select * from {{ ref('credits') }}
),

people as (
    select * from {{ ref('people') }}
),

title_rankings as (
    select * from {{ ref('title_rankings') }}
),

genres_per_title as (
    select
        title_genres.content_id,
        array_agg(title_genres.genre_id order by title_genres.genre_position) as genre_ids,
        string_agg(genres.genre_name, ', ' order by title_genres.genre_position) as genre_names
    from title_genres
    inner join genres on title_genres.genre_id = genres.genre_id
    group by title_genres.content_id
),

countries_per_title as (
    select
        title_production_countries.content_id,
        array_agg(
            title_production_countries.country_code order by title_production_countries.country_position
        ) as country_codes,
        string_agg(
            countries.country_name, ', ' order by title_production_countries.country_position
        ) as country_names
    from title_production_countries
    inner join countries on title_production_countries.country_code = countries.country_code
    group by title_production_countries.content_id
),

people_per_title as (
    select
        credits.content_id,
        string_agg(people.person_name, ', ' order by credits.billing_order)
        filter (where credits.credit_role = 'director') as directors,
        string_agg(people.person_name, ', ' order by credits.billing_order)
        filter (where credits.credit_role = 'actor' and credits.billing_order <= 5) as top_cast,
        count(*) filter (where credits.credit_role = 'actor') as cast_size
    from credits
    inner join people on credits.person_id = people.person_id
    group by credits.content_id
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
        coalesce(genres_per_title.genre_ids, '{}') as genre_ids,
        genres_per_title.genre_ids[1] as main_genre_id,
        genres_per_title.genre_names,
        coalesce(countries_per_title.country_codes, '{}') as country_codes,
        countries_per_title.country_codes[1] as main_country_code,
        countries_per_title.country_names,
        people_per_title.directors,
        people_per_title.top_cast,
        coalesce(people_per_title.cast_size, 0) as cast_size,
        coalesce(rankings_per_title.best_of_lists, '{}') as best_of_lists,
        rankings_per_title.best_of_rank,
        rankings_per_title.best_of_score,
        coalesce(rankings_per_title.is_best_of_year, false) as is_best_of_year
    from titles
    left join genres_per_title on titles.content_id = genres_per_title.content_id
    left join countries_per_title on titles.content_id = countries_per_title.content_id
    left join people_per_title on titles.content_id = people_per_title.content_id
    left join rankings_per_title on titles.content_id = rankings_per_title.content_id
)

select * from final
