-- A matched best-of entry points at a title of the list's kind and year.
select
    rankings.ranking_list,
    rankings.listed_title,
    titles.content_type,
    titles.release_year
from {{ ref('title_rankings') }} as rankings
inner join {{ ref('titles') }} as titles on rankings.content_id = titles.content_id
where
    titles.content_type <> rankings.content_type
    or titles.release_year <> rankings.listed_release_year
