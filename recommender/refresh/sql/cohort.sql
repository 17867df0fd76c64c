-- The cohort a refresh simulates on the catalogue it builds, kept beside app until the switch:
-- app__cohort holds its rows (tables shaped like app's), app__next shows app as it will be
-- once the generation is live (the cohort's users replaced), which the refresh's dbt reads.
create schema app__cohort;
create table app__cohort.batches (like app.batches including all);
create table app__cohort.users (like app.users including all);
create table app__cohort.viewing_events (like app.viewing_events including all);

create schema app__next;

-- the views have app's columns, whatever they are (select *), as dbt's app source expects

create view app__next.users as
select app_users.* from app.users as app_users  -- noqa: AM04
where
    not exists (
        select from app__cohort.users as cohort
        where cohort.user_id = app_users.user_id
    )
union all
select cohort.* from app__cohort.users as cohort;

create view app__next.viewing_events as
select events.* from app.viewing_events as events  -- noqa: AM04
where
    not exists (
        select from app__cohort.users as cohort
        where cohort.user_id = events.user_id
    )
union all
select cohort.* from app__cohort.viewing_events as cohort;

create view app__next.ratings as
select ratings.* from app.ratings  -- noqa: AM04
where not exists (
    select from app__cohort.users as cohort
    where cohort.user_id = ratings.user_id
);

-- experiments (recommender.activity.experiments): a refresh's cohort writes none, so app__next
-- shows app's as they are
create view app__next.experiments as
select experiments.* from app.experiments;  -- noqa: AM04

create view app__next.experiment_arms as
select experiment_arms.* from app.experiment_arms;  -- noqa: AM04

create view app__next.assignments as
select assignments.* from app.assignments;  -- noqa: AM04

create view app__next.impressions as
select impressions.* from app.impressions;  -- noqa: AM04

create view app__next.slate_utilities as
select slate_utilities.* from app.slate_utilities;  -- noqa: AM04
