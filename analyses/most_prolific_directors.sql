-- Directors with the most titles in the catalogue, and how those titles score.
with

filmography as (
    select * from {{ ref('person_filmography') }}
),

directors as (
    select
        person_id,
        person_name,
        count(*) as titles,
        count(*) filter (where content_type = 'movie') as movies,
        round(avg(imdb_score), 2) as avg_imdb_score,
        min(release_year) as first_release_year,
        max(release_year) as last_release_year
    from filmography
    where credit_role = 'director'
    group by person_id, person_name
)

select * from directors
order by titles desc, avg_imdb_score desc nulls last, person_name asc
limit 25
