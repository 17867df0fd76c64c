with

source as (
    select * from {{ ref('raw_titles') }}
),

renamed as (
    select
        -- ids
        id as content_id,
        {{ clean_text('imdb_id') }} as imdb_id,

        -- text
        {{ clean_text('title') }} as title,
        lower(type) as content_type,
        {{ clean_text('age_certification') }} as age_certification,

        -- lists
        {{ python_list_to_array('genres') }} as genres,
        {{ python_list_to_array('production_countries') }} as production_countries,

        -- numbers
        release_year,
        runtime as runtime_minutes,
        seasons::integer as seasons,
        imdb_score,
        imdb_votes::bigint as imdb_votes

    from source
)

select * from renamed
