-- The tables and views of the schemas Python owns (app, predictions, api), their
-- columns in order, and their primary and foreign keys: what the data dictionary's
-- pictures draw for the relations dbt does not define. Partitions are left out:
-- a run's rows are drawn once, as their parent table.
with relations as (
    select
        relations.oid,
        namespaces.nspname as relation_schema,
        relations.relname as relation_name
    from pg_class as relations
    inner join pg_namespace as namespaces on relations.relnamespace = namespaces.oid
    where
        namespaces.nspname in {{ schemas }}
        and relations.relkind in ('r', 'p', 'v')
        and not relations.relispartition
),

key_columns as (
    select
        table_constraints.conrelid,
        unnest(table_constraints.conkey) as attnum,
        table_constraints.contype,
        targets.relname as target_name,
        target_namespaces.nspname as target_schema
    from pg_constraint as table_constraints
    left join pg_class as targets on table_constraints.confrelid = targets.oid
    left join pg_namespace as target_namespaces on targets.relnamespace = target_namespaces.oid
    where table_constraints.contype in ('p', 'f')
)

select
    relations.relation_schema,
    relations.relation_name,
    attributes.attname as column_name,
    format_type(attributes.atttypid, attributes.atttypmod) as data_type,
    coalesce(bool_or(key_columns.contype = 'p'), false) as is_primary_key,
    min(key_columns.target_schema || '.' || key_columns.target_name) filter (where key_columns.contype = 'f')
        as refers_to
from relations
inner join pg_attribute as attributes
    on relations.oid = attributes.attrelid and attributes.attnum > 0 and not attributes.attisdropped
left join key_columns on relations.oid = key_columns.conrelid and attributes.attnum = key_columns.attnum
group by
    relations.relation_schema,
    relations.relation_name,
    attributes.attname,
    attributes.atttypid,
    attributes.atttypmod,
    attributes.attnum
order by relations.relation_schema, relations.relation_name, attributes.attnum
