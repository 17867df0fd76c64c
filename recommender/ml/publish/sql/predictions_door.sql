-- The door to schema predictions: security definer functions, the only way to change a run.
--
-- Each checks its inputs and the run's state (checked_run) and raises an error whose SQLSTATE
-- and message say what to fix: 22023 a bad argument, P0002 no such run, 42501 another login's
-- run, 55000 a run in the wrong state, 55P03 a lock not granted within lock_timeout (naming
-- who held it). They run as the owner with a fixed search_path; access.prepare_python_schemas
-- grants EXECUTE on them to data_scientist. Publishing a run's rows, in one transaction:
-- open_rows, COPY ... FREEZE into the table it returns, wait_for_readers, attach_rows; then,
-- after the commit, wait_for_readers again, record_results and make_current.

-- register a run of model as 'running'; its run id. With session_bound the run belongs to this
-- session: should the session end while the run is running, reap_orphans fails it.
create or replace function predictions.start_run(
    model text, parameters jsonb default '{}', data_snapshot jsonb default '{}', session_bound boolean default true
)
returns text
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
    new_run_id text := 'run-' || to_char(clock_timestamp() at time zone 'utc', 'YYYYMMDD"T"HH24MISS')
        || '-' || left(md5(gen_random_uuid()::text), 6);
begin
    if model is null or model !~ '^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$' then
        raise exception using
            errcode = 'invalid_parameter_value',
            message = format(
                'model %s is not a model name: 1 to 64 letters, digits, _ . : or -, the first a letter or digit',
                coalesce(quote_literal(left(model, 100)), 'null')
            );
    end if;
    perform predictions.check_object('parameters', parameters);
    perform predictions.check_object('data_snapshot', data_snapshot);
    insert into predictions.model_runs (
        run_id, model, parameters, data_snapshot, status, started_by, backend_pid, backend_start
    )
    select
        new_run_id, start_run.model, start_run.parameters, start_run.data_snapshot, 'running', session_user,
        sessions.pid, sessions.backend_start
    from (select null) as one_row
    left join pg_stat_activity as sessions on session_bound and sessions.pid = pg_backend_pid();
    return new_run_id;
end
$$;

-- create the running run's table of rows in the caller's transaction, with INSERT for this login
-- only, and return its name: the caller COPYs the rows into it with FREEZE in the same
-- transaction (the table is new in it), then calls attach_rows. The CREATE stays outside any
-- EXCEPTION block (each is a subtransaction): COPY FREEZE needs the table made by its own
-- (sub)transaction, the caller's.
create or replace function predictions.open_rows(run_id text)
returns text
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
    rows_table text := format('predictions.%I', predictions.partition_name(run_id));
begin
    perform predictions.checked_run(run_id, 'open_rows');
    if to_regclass(rows_table) is not null then
        raise exception using
            errcode = 'object_not_in_prerequisite_state',
            message = format('run %s has its table of rows already: a run''s rows are written once', run_id),
            hint = 'publish the run with the rows it has, or fail it and start another';
    end if;
    perform predictions.take_lock('predictions.recommendations', 'access share');
    execute format(
        'create table %s (like predictions.recommendations including defaults including constraints)', rows_table
    );
    -- run_id is not in the COPY: the default fills it; the check lets ATTACH skip its validation scan
    execute format(
        'alter table %s alter column run_id set default %L, add constraint %I check (run_id = %L)',
        rows_table, run_id, predictions.partition_name(run_id) || '_run', run_id
    );
    execute format('grant insert on %s to %I', rows_table, session_user);
    return rows_table;
end
$$;

-- wait at most timeout_s seconds until every other transaction that holds a lock on
-- predictions.recommendations now has ended; null once they have, else those still open, in
-- words. Called again after the transaction that attached the run's rows has committed, a wait
-- that ends records it: make_current needs it (a reader that planned its query before the
-- attach would see no rows once the run were current).
create or replace function predictions.wait_for_readers(run_id text, timeout_s double precision)
returns text
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
    found_run predictions.model_runs := predictions.checked_run(run_id, 'wait_for_readers');
    deadline timestamptz := clock_timestamp() + make_interval(secs => timeout_s);
    pause double precision := 0.001;
    readers text[];  -- virtual transaction ids: a session's next transaction is not waited for
    still_open integer[];
begin
    if timeout_s is null or timeout_s not between 0 and 3600 then
        raise exception using
            errcode = 'invalid_parameter_value',
            message = format('timeout_s must be between 0 and 3600 seconds, not %s', coalesce(timeout_s::text, 'null'));
    end if;
    select array_agg(held.virtualtransaction) into readers
    from pg_locks as held
    where
        held.locktype = 'relation'
        and held.database = (select oid from pg_database where datname = current_database())
        and held.relation = 'predictions.recommendations'::regclass
        and held.pid <> pg_backend_pid();
    loop
        select array_agg(distinct held.pid) into still_open
        from pg_locks as held
        where
            held.locktype = 'relation'
            and held.relation = 'predictions.recommendations'::regclass
            and held.virtualtransaction = any(readers);
        exit when still_open is null or clock_timestamp() >= deadline;
        perform pg_sleep(pause);
        pause := least(pause * 2, 0.05);
    end loop;
    if still_open is not null then
        return predictions.sessions(still_open);
    end if;
    if found_run.attached_xid is distinct from pg_current_xact_id_if_assigned() and predictions.has_rows(run_id) then
        update predictions.model_runs as runs set readers_cleared_at = clock_timestamp()
        where runs.run_id = wait_for_readers.run_id;
    end if;
    return null;
end
$$;

-- end the write access open_rows gave, build the primary key, count the rows and users, and
-- attach the table as the run's partition (the run stays 'running', not current)
create or replace function predictions.attach_rows(run_id text)
returns void
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
set maintenance_work_mem = '256MB'  -- the primary key of 2M rows needs about 150 MB
-- the counts read the new key in order, index-only (COPY FREEZE left every page all-visible)
set enable_seqscan = off
set enable_hashagg = off
as $$
declare
    rows_table text := format('predictions.%I', predictions.partition_name(run_id));
    grantee regrole;
    row_total bigint;
    user_total bigint;
begin
    perform predictions.checked_run(run_id, 'attach_rows');
    if to_regclass(rows_table) is null then
        raise exception using
            errcode = 'object_not_in_prerequisite_state',
            message = format('run %s has no rows to attach', run_id),
            hint = format('call predictions.open_rows(%L) and COPY the rows in this transaction first', run_id);
    end if;
    if exists (select from pg_inherits where inhrelid = to_regclass(rows_table)) then
        raise exception using
            errcode = 'object_not_in_prerequisite_state',
            message = format('the rows of run %s are attached already: a run''s rows are written once', run_id);
    end if;
    for grantee in
        select distinct acl.grantee::regrole
        from pg_class as relation cross join lateral aclexplode(relation.relacl) as acl
        where relation.oid = to_regclass(rows_table) and acl.privilege_type = 'INSERT' and acl.grantee <> relation.relowner
    loop
        execute format('revoke insert on %s from %s', rows_table, grantee);
    end loop;
    execute format('alter table %s add primary key (user_id, rank, run_id)', rows_table);
    execute format(
        'select coalesce(sum(per_user), 0), count(*) from (select count(*) as per_user from %s group by user_id) as users',
        rows_table
    ) into row_total, user_total;
    if row_total = 0 then
        raise exception using
            errcode = 'object_not_in_prerequisite_state',
            message = format('run %s has no rows: a run must recommend something', run_id);
    end if;
    perform predictions.take_lock('predictions.recommendations', 'share update exclusive');
    execute format(
        'alter table predictions.recommendations attach partition %s for values in (%L)', rows_table, run_id
    );
    update predictions.model_runs as runs
    set row_count = row_total, user_count = user_total, attached_xid = pg_current_xact_id()
    where runs.run_id = attach_rows.run_id;
end
$$;

-- store what the running run measured (JSON objects)
create or replace function predictions.record_results(run_id text, metrics jsonb, timings jsonb)
returns void
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
begin
    perform predictions.checked_run(run_id, 'record_results');
    perform predictions.check_object('metrics', metrics);
    perform predictions.check_object('timings', timings);
    update predictions.model_runs as runs
    set metrics = record_results.metrics, timings = record_results.timings
    where runs.run_id = record_results.run_id;
end
$$;

-- make the running run published and current, in the caller's transaction; the run current before
create or replace function predictions.make_current(run_id text)
returns text
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
    found_run predictions.model_runs;
    previous_run text;
begin
    perform predictions.lock_switch();
    found_run := predictions.checked_run(run_id, 'make_current');
    if not predictions.has_rows(run_id) then
        raise exception using
            errcode = 'object_not_in_prerequisite_state',
            message = format('run %s has no rows attached: open_rows, COPY and attach_rows first', run_id);
    end if;
    if found_run.readers_cleared_at is null then
        raise exception using
            errcode = 'object_not_in_prerequisite_state',
            message = format(
                'run %s: readers that planned their queries before its rows were attached may still be open', run_id
            ),
            hint = format('after the attach has committed, wait_for_readers(%L, seconds) until it returns null', run_id);
    end if;
    update predictions.model_runs set is_current = false where is_current returning model_runs.run_id into previous_run;
    update predictions.model_runs as runs
    set status = 'published', is_current = true, published_at = now(), finished_at = now(), error = null
    where runs.run_id = make_current.run_id;
    return previous_run;
end
$$;

-- mark the running run 'failed' with error (its first 10,000 characters); false if it had failed already
create or replace function predictions.fail_run(run_id text, error text)
returns boolean
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
    found_run predictions.model_runs := predictions.checked_run(run_id, 'fail_run', '{running,failed}');
begin
    if found_run.status = 'failed' then
        return false;  -- its first error stands
    end if;
    update predictions.model_runs as runs
    set status = 'failed', finished_at = now(), error = left(coalesce(fail_run.error, 'no reason given'), 10000)
    where runs.run_id = fail_run.run_id;
    return true;
end
$$;

-- make the run published before the current one current again (the current one becomes
-- 'rolled_back'); the run now current
create or replace function predictions.rollback()
returns text
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
    current_run predictions.model_runs;
    earlier_run text;
    earlier_runs integer;
begin
    perform predictions.lock_switch();
    select * into current_run from predictions.model_runs where is_current;
    if not found then
        raise exception using
            errcode = 'object_not_in_prerequisite_state',
            message = 'no run is current, so there is nothing to roll back';
    end if;
    select count(*) into earlier_runs from predictions.model_runs as runs
    where runs.status = 'published' and not runs.is_current and runs.published_at < current_run.published_at;
    select runs.run_id into earlier_run from predictions.model_runs as runs
    where
        runs.status = 'published' and not runs.is_current and runs.published_at < current_run.published_at
        and runs.pruned_at is null and predictions.has_rows(runs.run_id)
    order by runs.published_at desc, runs.run_id desc
    limit 1;
    if earlier_run is null then
        raise exception using
            errcode = 'object_not_in_prerequisite_state',
            message = format(
                'cannot roll back run %s: there is no earlier published run to return to%s', current_run.run_id,
                case when earlier_runs > 0 then format(
                    ' (%s earlier run(s) had their recommendations pruned)', earlier_runs
                ) else '' end
            );
    end if;
    update predictions.model_runs as runs set is_current = false, status = 'rolled_back'
    where runs.run_id = current_run.run_id;
    update predictions.model_runs as runs set is_current = true where runs.run_id = earlier_run;
    return earlier_run;
end
$$;

-- make the earlier run current again, in the caller's transaction (a warehouse generation's
-- rollback); the current run becomes 'rolled_back'
create or replace function predictions.restore(run_id text)
returns void
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
    found_run predictions.model_runs;
begin
    perform predictions.lock_switch();
    found_run := predictions.checked_run(run_id, 'restore', '{published,rolled_back}');
    if found_run.pruned_at is not null or not predictions.has_rows(run_id) then
        raise exception using
            errcode = 'object_not_in_prerequisite_state',
            message = format('run %s (%s) no longer has its recommendations to return to', run_id, found_run.status);
    end if;
    update predictions.model_runs as runs set is_current = false, status = 'rolled_back'
    where runs.is_current and runs.run_id <> restore.run_id;
    update predictions.model_runs as runs set is_current = true, status = 'published'
    where runs.run_id = restore.run_id;
end
$$;

-- mark 'failed' every running run whose session has ended (its process was killed); the runs
-- marked. The session is matched by pid and start, so a new session that reuses the pid is not
-- taken for it (where the owner may not see a session's start, by pid and login).
create or replace function predictions.reap_orphans()
returns setof text
language sql
security definer
set search_path = pg_catalog, pg_temp
as $$
    update predictions.model_runs as runs
    set
        status = 'failed',
        finished_at = now(),
        error = format(
            'the process publishing it ended while it was running (its database session %s is gone)', runs.backend_pid
        )
    where
        runs.status = 'running'
        and runs.backend_pid is not null
        and not exists (
            select from pg_stat_activity as sessions
            where
                sessions.pid = runs.backend_pid
                and (runs.started_by is null or sessions.usename = runs.started_by)
                and (sessions.backend_start is null or sessions.backend_start = runs.backend_start)
        )
    returning runs.run_id
$$;

-- give up the rows of all but the newest keep published or rolled-back runs (the current one
-- and running ones always keep theirs): they can never be current again. Returns the tables
-- to drop (their runs: pruned, failed, or none known), which only the owner can detach.
create or replace function predictions.prune(keep integer)
returns table (table_name text, run_id text)
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
begin
    if keep is null or keep < 1 then
        raise exception using
            errcode = 'invalid_parameter_value',
            message = format('keep must be at least 1 (the current run), not %s', coalesce(keep::text, 'null'));
    end if;
    perform predictions.reap_orphans();
    perform predictions.lock_switch();
    update predictions.model_runs as runs set pruned_at = now()
    where
        runs.status in ('published', 'rolled_back') and not runs.is_current and runs.pruned_at is null
        and runs.run_id not in (
            select newest.run_id from predictions.model_runs as newest
            where newest.status in ('published', 'rolled_back')
            order by newest.published_at desc nulls last, newest.run_id desc
            limit keep
        );
    return query
    with

    runs as (
        select
            model_runs.run_id,
            predictions.partition_name(model_runs.run_id) as table_name,
            model_runs.status = 'failed' or model_runs.pruned_at is not null as given_up
        from predictions.model_runs
    ),

    -- the partitions, and the tables of known runs left detached by an interrupted prune
    tables as (
        select relation.relname::text as table_name
        from pg_class as relation
        where
            relation.relnamespace = 'predictions'::regnamespace
            and relation.relkind = 'r'
            and (
                relation.oid in (select inhrelid from pg_inherits where inhparent = 'predictions.recommendations'::regclass)
                or relation.relname in (select runs.table_name from runs)
            )
    )

    select tables.table_name, runs.run_id
    from tables
    left join runs on tables.table_name = runs.table_name
    where runs.run_id is null or runs.given_up
    order by tables.table_name;
end
$$;

revoke execute on all functions in schema predictions from public;
-- harmless to anyone, and the publisher asks them whoever it runs as
grant execute on function predictions.is_owner(), predictions.partition_name(text) to public;
