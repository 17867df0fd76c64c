with

titles as (
    select * from {{ ref('stg_netflix__titles') }}
),

country_spellings as (
    select * from {{ ref('country_spellings') }}
),

listed as (
    select
        titles.content_id,
        listed.country_value,
        listed.country_position
    from titles
    cross join lateral unnest(titles.production_countries) with ordinality as listed (country_value, country_position)
),

-- a value that is neither a code nor a country name stays unmapped and fails
-- the not_null test on country_code, naming the value, rather than vanishing
mapped as (
    select
        listed.content_id,
        country_spellings.country_code,
        listed.country_position
    from listed
    left join country_spellings on lower(btrim(listed.country_value)) = country_spellings.spelling
),

final as (
    select
        content_id,
        country_code,
        min(country_position)::integer as country_position
    from mapped
    group by content_id, country_code
)

select * from final
