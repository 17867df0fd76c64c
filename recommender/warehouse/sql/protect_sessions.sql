-- Keep every role but the owner from signalling other sessions, taking advisory locks, making
-- large objects or making temp tables (recommender.warehouse.access.protect_sessions says why).
-- Function rights are per database, and only a superuser can revoke them from the built-in
-- functions: for any other owner PostgreSQL warns and nothing changes.
do $$
declare
    functions text;
begin
    select string_agg(oid::regprocedure::text, ', ') into functions
    from pg_proc
    where
        pronamespace = 'pg_catalog'::regnamespace
        and (
            proname in ('pg_terminate_backend', 'pg_cancel_backend')
            or (proname like 'pg%advisory%lock%' and proname not like '%unlock%')
            or proname in ('lo_creat', 'lo_create', 'lo_from_bytea', 'lo_import')
        );
    execute format('revoke execute on function %s from public', functions);
    execute format('revoke temporary on database %I from public', current_database());
    execute format('grant temporary on database %I to data_scientist', current_database());
end
$$;
