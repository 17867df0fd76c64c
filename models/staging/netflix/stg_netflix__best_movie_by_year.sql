with

source as (
    select * from {{ ref('raw_best_movie_by_year') }}
),

renamed as (
    select
        -- text
        {{ clean_text('title') }} as title,
        lower(main_genre) as main_genre,
        upper({{ clean_text('main_production') }}) as main_production_country,

        -- numbers
        release_year,
        score as imdb_score

    from source
)

select * from renamed
