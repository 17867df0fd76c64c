{#- Lets the access roles into the schemas dbt builds (those that exist, under
    this build's suffix); table and view grants come from each node's `grants`
    config. Run as on-run-end. -#}
{% macro grant_schema_usage() %}
    {% for layer in ['raw', 'staging', 'core', 'marts'] %}
        {% set schema = layer ~ env_var('NETFLIX_SCHEMA_SUFFIX', '') %}
        {% if adapter.check_schema_exists(target.database, schema) %}
            grant usage on schema {{ schema }} to analyst, data_scientist;
        {% endif %}
    {% endfor %}
{% endmacro %}
