with

source as (
    select * from {{ ref('raw_best_movies') }}
),

renamed as (
    select
        -- text
        {{ clean_text('title') }} as title,
        lower(main_genre) as main_genre,
        upper({{ clean_text('main_production') }}) as main_production_country,

        -- numbers
        release_year,
        number_of_votes as imdb_votes,
        duration as runtime_minutes,
        score as imdb_score

    from source
)

select * from renamed
