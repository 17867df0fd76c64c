-- Every way the export writes a country, lower-cased, mapped to its code: the
-- code itself (NA, SU, XX...), and the common and official names (Lebanon).
with

countries as (
    select * from {{ ref('countries') }}
),

spellings as (
    select
        lower(country_code) as spelling,
        country_code,
        1 as preference
    from countries
    union all
    select
        lower(country_name) as spelling,
        country_code,
        2 as preference
    from countries
    union all
    select
        lower(official_name) as spelling,
        country_code,
        3 as preference
    from countries
    where official_name is not null
),

final as (
    select distinct on (spelling)
        spelling,
        country_code
    from spellings
    order by spelling asc, preference asc
)

select * from final
