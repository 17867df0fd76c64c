with

source as (
    select * from {{ ref('raw_best_show_by_year') }}
),

renamed as (
    select
        -- text
        {{ clean_text('title') }} as title,
        lower(main_genre) as main_genre,
        upper({{ clean_text('main_production') }}) as main_production_country,

        -- numbers
        release_year,
        number_of_seasons as seasons,
        score as imdb_score

    from source
)

select * from renamed
