{#- Lets the access roles into the schemas dbt builds (those that exist);
    table and view grants come from each node's `grants` config. Run as on-run-end. -#}
{% macro grant_schema_usage() %}
    {% for schema in ['raw', 'staging', 'core', 'marts'] %}
        {% if adapter.check_schema_exists(target.database, schema) %}
            grant usage on schema {{ schema }} to analyst, data_scientist;
        {% endif %}
    {% endfor %}
{% endmacro %}
