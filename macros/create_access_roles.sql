{#- Creates the two access roles if missing (roles are cluster-wide, so this
    tolerates another database creating them at the same moment) and sets what
    they may do by default. Logins and passwords are the Python side's
    (recommender/access.py): dbt never sees a secret. Run as on-run-start, so
    plain `dbt build` on a new server can apply its grants. -#}
{% macro create_access_roles() %}
{%- for role in ['analyst', 'data_scientist'] %}
do $$
begin
    create role {{ role }} nologin;
exception when duplicate_object then null;
end
$$;
{%- endfor %}
alter role analyst set default_transaction_read_only = on;
alter role analyst set statement_timeout = '{{ var("analyst_statement_timeout", "60s") }}';
alter role analyst set idle_in_transaction_session_timeout = '5min';
{% endmacro %}
