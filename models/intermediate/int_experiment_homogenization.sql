-- One row per experiment, arm and experiment day: homogenization as T-RECS measures it, the
-- mean over pairs of the arm's users of the Jaccard overlap of what they have consumed,
-- each user's set being the titles watched from day 0 through that day (organic and from
-- slates). Pairs whose sets are both still empty are left out (their overlap is
-- undefined); null when no pair is left. To bound the cost (pairs grow with the square of
-- the users) each arm is measured on a deterministic sample: its first 200 users by
-- md5(user_id::text).
with

experiments as (
    select * from {{ ref('experiments') }}
),

arms as (
    select * from {{ ref('experiment_arms') }}
),

assignments as (
    select * from {{ ref('assignments') }}
),

events as (
    select * from {{ ref('viewing_events') }}
),

ranked_users as (
    select
        experiment_id,
        arm,
        user_id,
        row_number() over (
            partition by experiment_id, arm order by md5(user_id::text), user_id
        ) as sample_rank
    from assignments
),

sampled_users as (
    select
        experiment_id,
        arm,
        user_id
    from ranked_users
    where sample_rank <= 200
),

-- the day each sampled user first watched each title within the experiment's days
first_watched as (
    select
        sampled_users.experiment_id,
        sampled_users.arm,
        sampled_users.user_id,
        events.content_id,
        min((events.started_at at time zone 'UTC')::date - experiments.first_day) as experiment_day
    from sampled_users
    inner join experiments on sampled_users.experiment_id = experiments.experiment_id
    inner join events on sampled_users.user_id = events.user_id
    where (events.started_at at time zone 'UTC')::date - experiments.first_day between 0 and experiments.days - 1
    group by sampled_users.experiment_id, sampled_users.arm, sampled_users.user_id, events.content_id
),

arm_days as (
    select
        arms.experiment_id,
        arms.arm,
        day_numbers.experiment_day
    from arms
    inner join experiments on arms.experiment_id = experiments.experiment_id
    cross join lateral generate_series(0, experiments.days - 1) as day_numbers (experiment_day)
),

-- each sampled user's set size on each day (cumulative)
new_titles as (
    select
        experiment_id,
        user_id,
        experiment_day,
        count(*) as title_count
    from first_watched
    group by experiment_id, user_id, experiment_day
),

user_days as (
    select
        arm_days.experiment_id,
        arm_days.arm,
        sampled_users.user_id,
        arm_days.experiment_day,
        sum(coalesce(new_titles.title_count, 0)) over (
            partition by arm_days.experiment_id, sampled_users.user_id order by arm_days.experiment_day
        ) as set_size
    from arm_days
    inner join sampled_users
        on
            arm_days.experiment_id = sampled_users.experiment_id
            and arm_days.arm = sampled_users.arm
    left join new_titles
        on
            sampled_users.experiment_id = new_titles.experiment_id
            and sampled_users.user_id = new_titles.user_id
            and arm_days.experiment_day = new_titles.experiment_day
),

-- titles two sampled users of one arm share, from the day both had watched them
shared_titles as (
    select
        first_user.experiment_id,
        first_user.user_id as first_user_id,
        second_user.user_id as second_user_id,
        greatest(first_user.experiment_day, second_user.experiment_day) as experiment_day,
        count(*) as title_count
    from first_watched as first_user
    inner join first_watched as second_user
        on
            first_user.experiment_id = second_user.experiment_id
            and first_user.arm = second_user.arm
            and first_user.content_id = second_user.content_id
            and first_user.user_id < second_user.user_id
    group by
        first_user.experiment_id,
        first_user.user_id,
        second_user.user_id,
        greatest(first_user.experiment_day, second_user.experiment_day)
),

pair_days as (
    select
        first_days.experiment_id,
        first_days.arm,
        first_days.experiment_day,
        first_days.set_size as first_set_size,
        second_days.set_size as second_set_size,
        sum(coalesce(shared_titles.title_count, 0)) over (
            partition by first_days.experiment_id, first_days.user_id, second_days.user_id
            order by first_days.experiment_day
        ) as shared_count
    from user_days as first_days
    inner join user_days as second_days
        on
            first_days.experiment_id = second_days.experiment_id
            and first_days.arm = second_days.arm
            and first_days.experiment_day = second_days.experiment_day
            and first_days.user_id < second_days.user_id
    left join shared_titles
        on
            first_days.experiment_id = shared_titles.experiment_id
            and first_days.user_id = shared_titles.first_user_id
            and second_days.user_id = shared_titles.second_user_id
            and first_days.experiment_day = shared_titles.experiment_day
),

final as (
    select
        experiment_id,
        arm,
        experiment_day,
        avg(
            shared_count::numeric / nullif(first_set_size + second_set_size - shared_count, 0)
        ) as homogenization
    from pair_days
    group by experiment_id, arm, experiment_day
)

select * from final
