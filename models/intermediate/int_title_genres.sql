with

title_genres as (
    select * from {{ ref('title_genres') }}
),

genres as (
    select * from {{ ref('genres') }}
),

-- a title's genres as one list, in the export's order (the first is its main genre)
final as (
    select
        title_genres.content_id,
        array_agg(title_genres.genre_id order by title_genres.genre_position) as genre_ids,
        string_agg(genres.genre_name, ', ' order by title_genres.genre_position) as genre_names
    from title_genres
    inner join genres on title_genres.genre_id = genres.genre_id
    group by title_genres.content_id
)

select * from final
