{{ config(severity='warn') }}

-- Best-of entries that name no title of the catalogue (or several): kept in
-- core.title_rankings with a null content_id, reported here as a warning.
select
    ranking_list,
    listed_title,
    listed_release_year
from {{ ref('title_rankings') }}
where content_id is null
