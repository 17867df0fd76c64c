-- Every credit line of the export survives in core.credits: its person, title
-- and role have a row, and its character is among that row's character_names.
select
    staged.content_id,
    staged.person_id,
    staged.credit_role,
    staged.character_name
from {{ ref('stg_netflix__credits') }} as staged
left join {{ ref('credits') }} as kept
    on
        staged.content_id = kept.content_id
        and staged.person_id = kept.person_id
        and staged.credit_role = kept.credit_role
where
    kept.content_id is null
    or (staged.character_name is not null and not staged.character_name = any(kept.character_names))
