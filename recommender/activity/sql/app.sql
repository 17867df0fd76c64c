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

-- Experiments (recommender.activity.experiments): which variants (arms) are compared on
-- which users (assignments), what each user was shown (impressions) and what the
-- simulator knew of those slates (slate_utilities). Events and ratings cite an impression.
create table if not exists app.experiments (
    experiment_id bigint primary key check (experiment_id > 0),
    name text not null check (length(name) between 1 and 200),  -- noqa: RF04
    configuration jsonb not null default '{}' check (jsonb_typeof(configuration) = 'object'),  -- noqa: RF04
    seed bigint not null,
    first_day date not null,
    days integer not null check (days between 1 and 3660),  -- noqa: RF04
    status text not null default 'running' check (status in {{ experiment_statuses }}),
    created_at timestamptz not null default now(),
    finished_at timestamptz,
    written_at timestamptz not null default now()
);

create table if not exists app.experiment_arms (
    experiment_id bigint not null references app.experiments (experiment_id) on delete cascade,
    arm text not null check (arm ~ {{ arm_pattern }}),
    model text check (length(model) between 1 and 100),  -- noqa: RF04
    parameters jsonb not null default '{}' check (jsonb_typeof(parameters) = 'object'),  -- noqa: RF04
    run_id text,
    share double precision not null check (share > 0 and share <= 1),  -- noqa: RF04
    is_control boolean not null default false,
    primary key (experiment_id, arm),
    -- an arm is a model (trained or scored by the simulator), or a fixed published run
    check ((model is null) <> (run_id is null))
);

create table if not exists app.assignments (
    experiment_id bigint not null,
    user_id bigint not null references app.users (user_id),
    arm text not null,
    assigned_at timestamptz not null,
    batch_id text not null,
    written_at timestamptz not null default now(),
    primary key (experiment_id, user_id),
    unique (experiment_id, user_id, arm),
    foreign key (experiment_id, arm) references app.experiment_arms (experiment_id, arm) on delete cascade
);

create table if not exists app.impressions (
    impression_id bigint primary key,
    user_id bigint not null references app.users (user_id),
    content_id text not null check (content_id ~ {{ content_id_pattern }}),
    experiment_id bigint,
    arm text,
    run_id text,
    slate_id bigint not null,
    position smallint not null check (position between 1 and {{ max_position }}),  -- noqa: RF04
    shown_at timestamptz not null,
    batch_id text not null,
    written_at timestamptz not null default now(),
    unique (slate_id, position),
    check ((experiment_id is null) = (arm is null)),
    -- shown in an experiment: to a user of that arm
    foreign key (experiment_id, user_id, arm) references app.assignments (experiment_id, user_id, arm)
    on delete cascade
);

create index if not exists impressions_written_at on app.impressions (written_at);
create index if not exists impressions_user on app.impressions (user_id);

-- What only a simulator knows: each slate's utility to its user by the hidden taste, and
-- that of the best slate the user could have been shown (the oracle's); regret is the gap.
create table if not exists app.slate_utilities (
    slate_id bigint primary key,
    experiment_id bigint not null references app.experiments (experiment_id) on delete cascade,
    user_id bigint not null references app.users (user_id),
    slate_utility real not null,
    oracle_utility real not null,
    batch_id text not null,
    written_at timestamptz not null default now()
);

create index if not exists slate_utilities_written_at on app.slate_utilities (written_at);

-- A warehouse created before impressions has events and ratings without the column:
-- add it once (a lock only then).
do $$
begin
    if not exists (
        select from information_schema.columns
        where table_schema = 'app' and table_name = 'viewing_events' and column_name = 'impression_id'
    ) then
        alter table app.viewing_events add column impression_id bigint references app.impressions (impression_id);
    end if;
    if not exists (
        select from information_schema.columns
        where table_schema = 'app' and table_name = 'ratings' and column_name = 'impression_id'
    ) then
        alter table app.ratings add column impression_id bigint references app.impressions (impression_id);
    end if;
end
$$;

-- Deleting users or an experiment checks every row that refers to them: without an index
-- on each referring column that is a scan per deleted row.
create index if not exists viewing_events_user on app.viewing_events (user_id);
create index if not exists ratings_user on app.ratings (user_id);
create index if not exists viewing_events_impression on app.viewing_events (impression_id)
where impression_id is not null;
create index if not exists ratings_impression on app.ratings (impression_id)
where impression_id is not null;
create index if not exists assignments_user on app.assignments (user_id);
create index if not exists slate_utilities_user on app.slate_utilities (user_id);
