with

titles as (
    select * from {{ ref('stg_netflix__titles') }}
),

listed as (
    select
        titles.content_id,
        listed.genre_id,
        listed.genre_position
    from titles
    cross join lateral unnest(titles.genres) with ordinality as listed (genre_id, genre_position)
),

-- a genre listed twice for one title keeps its first position
final as (
    select
        content_id,
        genre_id,
        min(genre_position)::integer as genre_position
    from listed
    group by content_id, genre_id
)

select * from final
