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

-- the titles each sampled user first watched on each day
new_titles as (
    select
        experiment_id,
        user_id,
        experiment_day,
        count(*) as title_count
    from first_watched
    group by experiment_id, user_id, experiment_day
),

sampled_pairs as (
    select
        first_user.experiment_id,
        first_user.arm,
        first_user.user_id as first_user_id,
        second_user.user_id as second_user_id
    from sampled_users as first_user
    inner join sampled_users as second_user
        on
            first_user.experiment_id = second_user.experiment_id
            and first_user.arm = second_user.arm
            and first_user.user_id < second_user.user_id
),

-- titles two sampled users of one arm share, from the day both had watched them
shared_titles as (
    select
        first_user.experiment_id,
        first_user.arm,
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
        first_user.arm,
        first_user.user_id,
        second_user.user_id,
        greatest(first_user.experiment_day, second_user.experiment_day)
),

-- what changes, per pair and day, in either set and in their overlap: one stream
-- aggregated, rather than a grid of pairs and days joined to it
pair_changes as (
    select
        sampled_pairs.experiment_id,
        sampled_pairs.arm,
        sampled_pairs.first_user_id,
        sampled_pairs.second_user_id,
        new_titles.experiment_day,
        new_titles.title_count as first_added,
        0 as second_added,
        0 as shared_added
    from sampled_pairs
    inner join new_titles
        on
            sampled_pairs.experiment_id = new_titles.experiment_id
            and sampled_pairs.first_user_id = new_titles.user_id
    union all
    select
        sampled_pairs.experiment_id,
        sampled_pairs.arm,
        sampled_pairs.first_user_id,
        sampled_pairs.second_user_id,
        new_titles.experiment_day,
        0 as first_added,
        new_titles.title_count as second_added,
        0 as shared_added
    from sampled_pairs
    inner join new_titles
        on
            sampled_pairs.experiment_id = new_titles.experiment_id
            and sampled_pairs.second_user_id = new_titles.user_id
    union all
    select
        experiment_id,
        arm,
        first_user_id,
        second_user_id,
        experiment_day,
        0 as first_added,
        0 as second_added,
        title_count as shared_added
    from shared_titles
),

pair_day_changes as (
    select
        experiment_id,
        arm,
        first_user_id,
        second_user_id,
        experiment_day,
        sum(first_added) as first_added,
        sum(second_added) as second_added,
        sum(shared_added) as shared_added
    from pair_changes
    group by experiment_id, arm, first_user_id, second_user_id, experiment_day
),

-- each pair's sets from each day they change until the next change (or the last day)
pair_states as (
    select
        experiment_id,
        arm,
        experiment_day,
        lead(experiment_day) over pair_days as next_change_day,
        sum(first_added) over pair_days as first_set_size,
        sum(second_added) over pair_days as second_set_size,
        sum(shared_added) over pair_days as shared_count
    from pair_day_changes
    window pair_days as (partition by experiment_id, first_user_id, second_user_id order by experiment_day)
),

pair_overlaps as (
    select
        pair_states.experiment_id,
        pair_states.arm,
        held_days.experiment_day,
        pair_states.shared_count::numeric
        / (pair_states.first_set_size + pair_states.second_set_size - pair_states.shared_count) as jaccard
    from pair_states
    inner join experiments on pair_states.experiment_id = experiments.experiment_id
    cross join lateral generate_series(
        pair_states.experiment_day, coalesce(pair_states.next_change_day, experiments.days) - 1
    ) as held_days (experiment_day)
),

-- pairs whose sets are both empty (no row yet) are left out
final as (
    select
        experiment_id,
        arm,
        experiment_day,
        avg(jaccard) as homogenization
    from pair_overlaps
    group by experiment_id, arm, experiment_day
)

select * from final
