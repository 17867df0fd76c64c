{#- Grants nothing on Spark: an in-process session or a cluster's catalog has no
    roles; readers' rights live in PostgreSQL, where Spark's results return. -#}
{% macro spark__apply_grants(relation, grant_config, should_revoke) %}
{% endmacro %}
