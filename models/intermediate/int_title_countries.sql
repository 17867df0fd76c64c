with

title_production_countries as (
    select * from {{ ref('title_production_countries') }}
),

countries as (
    select * from {{ ref('countries') }}
),

-- a title's production countries as one list, in the export's order (the first is
-- its main production country)
final as (
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
)

select * from final
