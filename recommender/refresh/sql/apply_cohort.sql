-- At the switch, in its transaction: the cohort's users replace whatever those user ids held
-- in app, and the staging schemas go. Writers wait (readers do not) for these few statements.
lock table app.batches, app.users, app.viewing_events, app.ratings in share row exclusive mode;

delete from app.viewing_events as events
using app__cohort.users as cohort
where events.user_id = cohort.user_id;

delete from app.ratings as ratings
using app__cohort.users as cohort
where ratings.user_id = cohort.user_id;

delete from app.users as app_users
using app__cohort.users as cohort
where app_users.user_id = cohort.user_id;

-- the cohort's tables are app's, column for column (create table ... like)
insert into app.batches select * from app__cohort.batches on conflict (batch_id) do nothing;  -- noqa: AM04
insert into app.users select * from app__cohort.users;  -- noqa: AM04
insert into app.viewing_events select * from app__cohort.viewing_events;  -- noqa: AM04

-- batches left with no row (the replaced cohort's) are forgotten, so writing one again writes it
delete from app.batches as batches
where
    not exists (
        select from app.users as app_users
        where app_users.batch_id = batches.batch_id
    )
    and not exists (
        select from app.viewing_events as events
        where events.batch_id = batches.batch_id
    )
    and not exists (
        select from app.ratings as ratings
        where ratings.batch_id = batches.batch_id
    );

-- without cascade: should a live view still read them, the switch fails instead of dropping it
drop view app__next.users, app__next.viewing_events, app__next.ratings;
drop view app__next.experiments, app__next.experiment_arms, app__next.assignments;
drop view app__next.impressions, app__next.slate_utilities;
drop schema app__next;
drop table app__cohort.batches, app__cohort.users, app__cohort.viewing_events;
drop schema app__cohort;
