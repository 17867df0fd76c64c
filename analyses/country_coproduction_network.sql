-- Pairs of countries that co-produce titles: the edges of the co-production
-- network, heaviest first (each pair once, in code order).
with

title_production_countries as (
    select * from {{ ref('title_production_countries') }}
),

countries as (
    select * from {{ ref('countries') }}
),

pairs as (
    select
        first_country.country_code as country_a,
        second_country.country_code as country_b,
        count(*) as shared_titles
    from title_production_countries as first_country
    inner join title_production_countries as second_country
        on
            first_country.content_id = second_country.content_id
            and first_country.country_code < second_country.country_code
    group by first_country.country_code, second_country.country_code
),

named as (
    select
        pairs.country_a,
        country_a_names.country_name as country_a_name,
        pairs.country_b,
        country_b_names.country_name as country_b_name,
        pairs.shared_titles
    from pairs
    inner join countries as country_a_names on pairs.country_a = country_a_names.country_code
    inner join countries as country_b_names on pairs.country_b = country_b_names.country_code
)

select * from named
order by shared_titles desc, country_a asc, country_b asc
