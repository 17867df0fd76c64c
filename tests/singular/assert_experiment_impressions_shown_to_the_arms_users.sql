-- An impression shown in an experiment went to a user assigned to the arm that showed it
-- (app.impressions' composite foreign key, checked again in core, where it is not declared).
select
    impressions.impression_id,
    impressions.experiment_id,
    impressions.user_id,
    impressions.arm
from {{ ref('impressions') }} as impressions
left join {{ ref('assignments') }} as assignments
    on
        impressions.experiment_id = assignments.experiment_id
        and impressions.user_id = assignments.user_id
        and impressions.arm = assignments.arm
where
    impressions.experiment_id is not null
    and assignments.user_id is null
