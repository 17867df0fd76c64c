-- Schema api: the HTTP API's keys (only their hashes) and its idempotency records (recommender.api.keys).
-- Idempotent: keys.ensure_schema runs it when the API starts and before the keys command's work.
-- a new schema grants nothing to public: only the owner reads the hashes
create schema if not exists api;

create table if not exists api.keys (
    key_id text primary key,
    name text not null check (length(name) between 1 and 200),  -- noqa: RF04
    role text not null check (role in {{ roles }}),  -- noqa: RF04
    key_hash bytea not null,
    created_at timestamptz not null default now(),
    revoked_at timestamptz
);

-- a replayed write returns the first answer; one row per (key, Idempotency-Key)
create table if not exists api.idempotency (
    key_id text not null references api.keys (key_id),
    idempotency_key text not null,
    request_hash bytea not null,
    status_code smallint not null,
    response jsonb not null,
    created_at timestamptz not null default now(),
    primary key (key_id, idempotency_key)
);
