with

catalogue as (
    select * from {{ ref('catalogue') }}
),

title_production_countries as (
    select * from {{ ref('title_production_countries') }}
),

countries as (
    select * from {{ ref('countries') }}
),

per_country as (
    select
        title_production_countries.country_code,
        count(*) as titles,
        count(*) filter (where catalogue.content_type = 'movie') as movies,
        count(*) filter (where catalogue.content_type = 'show') as shows,
        count(*) filter (where cardinality(catalogue.country_codes) > 1) as co_productions,
        round(avg(catalogue.imdb_score), 2) as avg_imdb_score,
        min(catalogue.release_year) as first_release_year,
        max(catalogue.release_year) as last_release_year,
        mode() within group (order by catalogue.main_genre_id) as most_common_main_genre_id,
        count(*) filter (where cardinality(catalogue.best_of_lists) > 0) as best_of_titles
    from title_production_countries
    inner join catalogue on title_production_countries.content_id = catalogue.content_id
    group by title_production_countries.country_code
),

final as (
    select
        per_country.country_code,
        countries.country_name,
        countries.country_status,
        per_country.titles,
        per_country.movies,
        per_country.shows,
        per_country.co_productions,
        per_country.avg_imdb_score,
        per_country.first_release_year,
        per_country.last_release_year,
        per_country.most_common_main_genre_id,
        per_country.best_of_titles
    from per_country
    inner join countries on per_country.country_code = countries.country_code
)

select * from final
