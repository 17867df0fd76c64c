-- The schemas the Python side owns, and what the groups may do there (recommender.warehouse.access):
-- data_scientist writes app; analyst and data_scientist read predictions, which data_scientist
-- changes only through its door (the security definer functions of predictions_door.sql).
-- Default privileges cover the tables the running role creates there later. What a warehouse
-- built before gave on predictions (writes, create) is taken back. Idempotent.
create schema if not exists app;
create schema if not exists predictions;

grant usage, create on schema app to data_scientist;
grant select, insert, update, delete on all tables in schema app to data_scientist;
alter default privileges in schema app grant select, insert, update, delete on tables to data_scientist;
grant usage, select on all sequences in schema app to data_scientist;
alter default privileges in schema app grant usage, select on sequences to data_scientist;

grant usage on schema predictions to analyst, data_scientist;
revoke create on schema predictions from data_scientist;
revoke insert, update, delete, truncate, references, trigger
on all tables in schema predictions from analyst, data_scientist;
alter default privileges in schema predictions
revoke insert, update, delete, truncate, references, trigger on tables from analyst, data_scientist;
revoke all on all sequences in schema predictions from data_scientist;
alter default privileges in schema predictions revoke all on sequences from data_scientist;
grant select on all tables in schema predictions to analyst, data_scientist;
alter default privileges in schema predictions grant select on tables to analyst, data_scientist;

-- the door's functions are its security definer ones; the helpers they call stay the owner's
do $$
declare
    doors text;
begin
    select string_agg(oid::regprocedure::text, ', ') into doors
    from pg_proc
    where pronamespace = 'predictions'::regnamespace and prosecdef;
    if doors is not null then
        execute format('grant execute on function %s to data_scientist', doors);
    end if;
end
$$;
