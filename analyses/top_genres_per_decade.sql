-- The three most common genres of each release decade, with their share of the decade's titles.
with

catalogue as (
    select * from {{ ref('catalogue') }}
),

title_genres as (
    select * from {{ ref('title_genres') }}
),

per_decade as (
    select
        catalogue.release_decade,
        title_genres.genre_id,
        count(*) as titles
    from catalogue
    inner join title_genres on catalogue.content_id = title_genres.content_id
    group by catalogue.release_decade, title_genres.genre_id
),

decade_sizes as (
    select
        release_decade,
        count(*) as decade_titles
    from catalogue
    group by release_decade
),

ranked as (
    select
        per_decade.release_decade,
        per_decade.genre_id,
        per_decade.titles,
        round(100.0 * per_decade.titles / decade_sizes.decade_titles, 1) as percent_of_decade,
        rank() over (partition by per_decade.release_decade order by per_decade.titles desc) as genre_rank
    from per_decade
    inner join decade_sizes on per_decade.release_decade = decade_sizes.release_decade
)

select * from ranked
where genre_rank <= 3
order by release_decade, genre_rank, genre_id
