-- The title-country bridge with the title's scores: the grain at which a mean or a
-- vote-weighted IMDb score per production country is correct (a co-production counts
-- once under each of its countries).
with

title_production_countries as (
    select * from {{ ref('title_production_countries') }}
),

catalogue as (
    select * from {{ ref('catalogue') }}
),

final as (
    select
        title_production_countries.country_code,
        title_production_countries.content_id,
        title_production_countries.country_position,
        catalogue.release_year,
        catalogue.imdb_score,
        catalogue.imdb_votes
    from title_production_countries
    inner join catalogue on title_production_countries.content_id = catalogue.content_id
)

select * from final
