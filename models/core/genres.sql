with

titles as (
    select * from {{ ref('stg_netflix__titles') }}
),

listed_genres as (
    select distinct listed.genre_id
    from titles
    cross join lateral unnest(titles.genres) as listed (genre_id)
),

final as (
    select
        genre_id,
        case genre_id
            when 'scifi' then 'Science fiction'
            when 'documentation' then 'Documentary'
            else initcap(genre_id)
        end as genre_name
    from listed_genres
)

select * from final
