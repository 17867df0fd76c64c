-- Schema predictions: model runs and their recommendations, one partition per run, and the
-- helpers of the functions in predictions_door.sql.
--
-- Nobody but the warehouse owner writes these tables directly; analyst and data_scientist
-- may read them. Runs change only through the door's security definer functions, which the
-- owner's own publisher uses too (recommender/publish.py). publish.ensure_schema runs this
-- file, then the door's, as the owner whenever either changes: every statement is idempotent
-- and never locks readers out.

create schema if not exists predictions;

create table if not exists predictions.model_runs (
    run_id text primary key,
    model text not null,  -- noqa: RF04
    parameters jsonb not null default '{}',  -- noqa: RF04
    data_snapshot jsonb not null default '{}',
    metrics jsonb not null default '{}',
    timings jsonb not null default '{}',
    status text not null check (status in ('running', 'published', 'failed', 'rolled_back')),
    is_current boolean not null default false,
    user_count integer,
    row_count bigint,
    error text,
    backend_pid integer,  -- the session that registered the run: a run whose session ended while
    backend_start timestamptz,  -- running is recognised as orphaned (reap_orphans)
    started_by text,  -- the login that started the run: only it (or the owner) may change the run
    attached_xid xid8,  -- the transaction that attached the run's rows
    readers_cleared_at timestamptz,  -- when no reader that planned before the attach was left
    pruned_at timestamptz,  -- when pruning gave up the run's rows: it can never be current again
    started_at timestamptz not null default now(),
    finished_at timestamptz,
    published_at timestamptz
);

-- columns added since (ALTER TABLE locks readers out, so only where one is missing)
do $$
begin
    if exists (
        select from unnest(array[
            'backend_pid', 'backend_start', 'started_by', 'attached_xid', 'readers_cleared_at', 'pruned_at'
        ]) as wanted (name)
        where not exists (
            select from pg_attribute
            where attrelid = 'predictions.model_runs'::regclass and attname = wanted.name and not attisdropped
        )
    ) then
        alter table predictions.model_runs
            add column if not exists backend_pid integer,
            add column if not exists backend_start timestamptz,
            add column if not exists started_by text,
            add column if not exists attached_xid xid8,
            add column if not exists readers_cleared_at timestamptz,
            add column if not exists pruned_at timestamptz;
    end if;
end
$$;

-- at most one current run
create unique index if not exists model_runs_one_current on predictions.model_runs (is_current) where is_current;

-- one partition per run; the primary key leads with user_id: it serves lookups of one user, and
-- builds faster than one leading with run_id (the same value in every row of a partition)
create table if not exists predictions.recommendations (
    run_id text not null,
    user_id bigint not null,
    content_id text not null,
    score real not null,
    rank smallint not null check (rank > 0),
    reason text not null,
    primary key (user_id, rank, run_id)
) partition by list (run_id);

-- the current run's rows, for the API and analysts; created once (replacing it would lock out readers)
do $$
begin
    if to_regclass('predictions.current_recommendations') is null then
        create view predictions.current_recommendations as
            select recommendations.* from predictions.recommendations
            inner join predictions.model_runs
                on recommendations.run_id = model_runs.run_id and model_runs.is_current;
    end if;
end
$$;

-- The switch lock: its one row is locked (FOR UPDATE) by every change of the current run and by
-- pruning. Locking a row needs UPDATE, which only the owner has: no reader can take or hold it
-- (anyone may take an advisory lock where the owner is no superuser).
create table if not exists predictions.switch_lock (
    only_row boolean primary key default true check (only_row)
);

insert into predictions.switch_lock (only_row) values (true) on conflict do nothing;

-- functions run only by whom this file grants them to
alter default privileges in schema predictions revoke execute on functions from public;


-- ---------------------------------------------------------------------------------------------------------------------
-- helpers of the door, run as the owner inside its functions (no EXECUTE for anyone else)

-- the table (in schema predictions) of a run's rows: recommendations_20240131t120000_0a1b2c
create or replace function predictions.partition_name(run_id text)
returns text
language sql
immutable
strict
as $$
    select 'recommendations_' || lower(replace(substr(run_id, 5), '-', '_'))
$$;

-- is the login of this session the warehouse owner (or a member of it, or a superuser)?
create or replace function predictions.is_owner()
returns boolean
language sql
stable
as $$
    select pg_has_role(session_user, (select relowner from pg_class where oid = 'predictions.model_runs'::regclass), 'member')
$$;

-- sessions in words, for errors: pid, user, application, state and when its query started
create or replace function predictions.sessions(pids integer[])
returns text
language sql
stable
as $$
    select coalesce(
        string_agg(
            format(
                'pid %s (user %s, application %L, %s, query started %s)',
                pid, usename, application_name, coalesce(state, 'state unknown'),
                coalesce(to_char(query_start, 'YYYY-MM-DD HH24:MI:SS TZ'), 'at an unknown time')
            ),
            '; ' order by pid
        ),
        'sessions that have ended since'
    )
    from pg_stat_activity
    where pid = any(pids)
$$;

-- the other sessions holding a lock on relation that conflicts with mode (access share,
-- share update exclusive or access exclusive), in words
create or replace function predictions.lockers(relation regclass, mode text)
returns text
language sql
stable
as $$
    select predictions.sessions(array_agg(distinct held.pid))
    from pg_locks as held
    where
        held.locktype = 'relation'
        and held.database = (select oid from pg_database where datname = current_database())
        and held.relation = lockers.relation
        and held.granted
        and held.pid <> pg_backend_pid()
        and held.mode = any(
            case lockers.mode
                when 'access share' then array['AccessExclusiveLock']
                when 'share update exclusive' then array[
                    'ShareUpdateExclusiveLock', 'ShareLock', 'ShareRowExclusiveLock', 'ExclusiveLock',
                    'AccessExclusiveLock'
                ]
                else array[
                    'AccessShareLock', 'RowShareLock', 'RowExclusiveLock', 'ShareUpdateExclusiveLock', 'ShareLock',
                    'ShareRowExclusiveLock', 'ExclusiveLock', 'AccessExclusiveLock'
                ]
            end
        )
$$;

-- lock relation (not its partitions: as the statement that follows would) in mode, waiting at most
-- lock_timeout; on timeout the error names who held it
create or replace function predictions.take_lock(relation regclass, mode text)
returns void
language plpgsql
as $$
begin
    execute format('lock table only %s in %s mode', relation, mode);
exception when lock_not_available then
    raise exception using
        errcode = 'lock_not_available',
        message = format(
            'gave up after lock_timeout (%s) waiting for a %s lock on %s, held by: %s',
            current_setting('lock_timeout'), mode, relation, predictions.lockers(relation, mode)
        ),
        hint = 'end those sessions, or try again once they have finished';
end
$$;

-- take the switch lock, waiting at most lock_timeout; on timeout the error names who held it
create or replace function predictions.lock_switch()
returns void
language plpgsql
as $$
declare
    holders integer[];
begin
    perform from predictions.switch_lock for update;
exception when lock_not_available then
    -- a locked row's xmax is the locker's transaction
    select array_agg(held.pid) into holders
    from pg_locks as held
    where
        held.locktype = 'transactionid' and held.granted
        and held.transactionid = (select switch_lock.xmax from predictions.switch_lock);
    raise exception using
        errcode = 'lock_not_available',
        message = format(
            'gave up after lock_timeout (%s) waiting for another change of the current run to finish, in: %s',
            current_setting('lock_timeout'), predictions.sessions(holders)
        ),
        hint = 'try again once it has finished';
end
$$;

-- a JSON argument must be an object of at most 1 MB
create or replace function predictions.check_object(argument text, value jsonb)
returns void
language plpgsql
immutable
as $$
begin
    if value is null or jsonb_typeof(value) <> 'object' or octet_length(value::text) > 1000000 then
        raise exception using
            errcode = 'invalid_parameter_value',
            message = format('%s must be a JSON object of at most 1 MB, not %s', argument, left(value::text, 100));
    end if;
end
$$;

-- the run, locked, if it exists, was started by this login (or the caller is the owner) and its
-- status is one of statuses; else an error that names what is wrong (action: the door's function)
create or replace function predictions.checked_run(run_id text, action text, statuses text[] default '{running}')
returns predictions.model_runs
language plpgsql
as $$
declare
    found_run predictions.model_runs;
begin
    if run_id is null or run_id !~ '^run-[0-9]{8}T[0-9]{6}-[0-9a-f]{6}$' then
        raise exception using
            errcode = 'invalid_parameter_value',
            message = format(
                '%s is not a run id: run ids look like run-20240131T120000-0a1b2c (predictions.start_run makes them)',
                coalesce(quote_literal(left(run_id, 100)), 'null')
            );
    end if;
    select * into found_run from predictions.model_runs as runs where runs.run_id = checked_run.run_id for update;
    if not found then
        raise exception using
            errcode = 'no_data_found',
            message = format('there is no run %s in predictions.model_runs: register one with start_run', run_id);
    end if;
    if found_run.started_by is distinct from session_user and not predictions.is_owner() then
        raise exception using
            errcode = 'insufficient_privilege',
            message = format(
                'run %s was started by %s: only that login, or the warehouse owner, may call %s on it',
                run_id, coalesce(found_run.started_by, 'the warehouse owner'), action
            );
    end if;
    if not found_run.status = any(statuses) then
        raise exception using
            errcode = 'object_not_in_prerequisite_state',
            message = format(
                'run %s is %s: %s takes a %s run', run_id, found_run.status, action,
                array_to_string(statuses, ' or ')
            ),
            hint = 'start a new run with start_run';
    end if;
    return found_run;
end
$$;

-- the run's rows are in its partition, attached (not being detached)
create or replace function predictions.has_rows(run_id text)
returns boolean
language sql
stable
as $$
    select exists (
        select from pg_inherits
        where
            inhparent = 'predictions.recommendations'::regclass
            and inhrelid = to_regclass(format('predictions.%I', predictions.partition_name(run_id)))
            and not inhdetachpending
    )
$$;
