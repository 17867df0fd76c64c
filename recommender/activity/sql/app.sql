-- Schema app: users and their activity, written by the simulator, notebooks and the HTTP API
-- (recommender.activity). Idempotent: activity.ensure_schema runs it on every write path's start.
-- Jinja placeholders stand for the vocabularies of recommender.activity.frames and the content-id pattern.
create schema if not exists app;

create table if not exists app.batches (
    batch_id text primary key,
    kind text not null constraint batches_kind_check check (kind in {{ batch_kinds }}),
    row_count integer not null check (row_count >= 0),
    written_at timestamptz not null default now()
);

-- A warehouse created before a kind was added (ratings) still has the older check,
-- which `create table if not exists` leaves alone: replace it, once. A check that
-- already allows every kind is left untouched (no lock, no privilege needed).
do $$
begin
    if not exists (
        select from pg_constraint
        where conrelid = 'app.batches'::regclass
            and conname = 'batches_kind_check'
            and pg_get_constraintdef(oid) like all (array[{{ kind_patterns }}])
    ) then
        alter table app.batches drop constraint if exists batches_kind_check;
        alter table app.batches add constraint batches_kind_check check (kind in {{ batch_kinds }});
    end if;
end
$$;

create table if not exists app.users (
    user_id bigint primary key check (user_id > 0),
    age_band text not null check (age_band in {{ age_bands }}),
    country_code text not null check (country_code ~ '^[A-Z]{2}$'),
    signup_date date not null,
    plan text not null check (plan in {{ plans }}),
    device text not null check (device in {{ devices }}),
    language text not null check (language ~ '^[a-z]{2}$'),  -- noqa: RF04
    attributes jsonb not null default '{}' check (jsonb_typeof(attributes) = 'object'),
    batch_id text not null,
    written_at timestamptz not null default now()
);

create table if not exists app.viewing_events (
    event_id bigint primary key,
    user_id bigint not null references app.users (user_id),
    content_id text not null check (content_id ~ {{ content_id_pattern }}),
    started_at timestamptz not null,
    seconds_watched integer not null check (seconds_watched >= 0),
    completion_ratio real not null check (completion_ratio between 0 and 1),
    rating smallint check (rating between 1 and 5),
    device text not null check (device in {{ devices }}),
    batch_id text not null,
    written_at timestamptz not null default now()
);

-- dbt loads core.viewing_events incrementally by written_at
create index if not exists viewing_events_written_at on app.viewing_events (written_at);

-- One row per rating given. A user may rate a title again: every rating is kept,
-- and the one with the latest rated_at counts.
create table if not exists app.ratings (
    rating_id bigint primary key,
    user_id bigint not null references app.users (user_id),
    content_id text not null check (content_id ~ {{ content_id_pattern }}),
    rating smallint not null check (rating between 1 and 5),
    rated_at timestamptz not null,
    batch_id text not null,
    written_at timestamptz not null default now()
);

-- dbt loads core.ratings incrementally by written_at
create index if not exists ratings_written_at on app.ratings (written_at);
