{#- Creates the two group roles if missing (roles are cluster-wide, so this
    tolerates another database creating them at the same moment) and sets their
    limits. Nobody logs in as a group: people and API keys have logins of their
    own, members of one group, that take these settings as their defaults and are
    held to them by recommender/watchdog.py whatever a session sets
    (recommender/logins.py). dbt never sees a secret. Run as on-run-start, so
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
alter role data_scientist set idle_in_transaction_session_timeout = '15min';
{% endmacro %}
