-- One row per slate shown in an experiment within its days: its size, clicks, diversity
-- and regret.
--   intra_list_diversity = mean over the slate's pairs of titles of 1 - Jaccard(genre sets)
--                          (core.title_genres; two titles with no genre between them count
--                          as sharing none, distance 1); null for a slate of one title;
--   regret               = oracle_utility - slate_utility (core.slate_utilities), null
--                          where the simulator wrote none.
with

shown as (
    select * from {{ ref('int_experiment_impressions') }}
),

title_genres as (
    select * from {{ ref('title_genres') }}
),

utilities as (
    select * from {{ ref('slate_utilities') }}
),

genre_counts as (
    select
        content_id,
        count(*) as genre_count
    from title_genres
    group by content_id
),

title_pairs as (
    select
        first_shown.slate_id,
        first_shown.position as first_position,
        second_shown.position as second_position,
        first_shown.content_id as first_content_id,
        second_shown.content_id as second_content_id
    from shown as first_shown
    inner join shown as second_shown
        on
            first_shown.slate_id = second_shown.slate_id
            and first_shown.position < second_shown.position
),

shared_genres as (
    select
        title_pairs.slate_id,
        title_pairs.first_position,
        title_pairs.second_position,
        title_pairs.first_content_id,
        title_pairs.second_content_id,
        count(second_genres.genre_id) as shared_genre_count
    from title_pairs
    left join title_genres as first_genres
        on title_pairs.first_content_id = first_genres.content_id
    left join title_genres as second_genres
        on
            title_pairs.second_content_id = second_genres.content_id
            and first_genres.genre_id = second_genres.genre_id
    group by
        title_pairs.slate_id,
        title_pairs.first_position,
        title_pairs.second_position,
        title_pairs.first_content_id,
        title_pairs.second_content_id
),

pair_distances as (
    select
        shared_genres.slate_id,
        1 - coalesce(
            shared_genres.shared_genre_count::numeric
            / nullif(
                coalesce(first_counts.genre_count, 0)
                + coalesce(second_counts.genre_count, 0)
                - shared_genres.shared_genre_count,
                0
            ),
            0
        ) as genre_distance
    from shared_genres
    left join genre_counts as first_counts on shared_genres.first_content_id = first_counts.content_id
    left join genre_counts as second_counts on shared_genres.second_content_id = second_counts.content_id
),

slate_diversity as (
    select
        slate_id,
        avg(genre_distance) as intra_list_diversity
    from pair_distances
    group by slate_id
),

slates as (
    select
        slate_id,
        experiment_id,
        arm,
        user_id,
        min(experiment_day) as experiment_day,
        count(*) as impressions,
        count(*) filter (where is_clicked) as clicks
    from shown
    group by slate_id, experiment_id, arm, user_id
),

final as (
    select
        slates.slate_id,
        slates.experiment_id,
        slates.arm,
        slates.user_id,
        slates.experiment_day,
        slates.impressions,
        slates.clicks,
        slate_diversity.intra_list_diversity,
        utilities.oracle_utility::numeric - utilities.slate_utility::numeric as regret
    from slates
    left join slate_diversity on slates.slate_id = slate_diversity.slate_id
    left join utilities on slates.slate_id = utilities.slate_id
)

select * from final
