with

iso_countries as (
    select * from {{ ref('iso_3166_countries') }}
),

final as (
    select
        country_code,
        country_name,
        official_name,
        alpha_3,
        numeric_code,
        country_status
    from iso_countries
)

select * from final
