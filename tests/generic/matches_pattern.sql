{#- Fails for every non-null value that does not match the POSIX regular
    expression `pattern` as a whole. The pattern is anchored here, so one that is
    anchored already (var('content_id_pattern'), '^t[ms][0-9]+$') means the same. -#}
{% test matches_pattern(model, column_name, pattern) %}
    select {{ column_name }} as unmatched_value
    from {{ model }}
    where {{ column_name }} is not null
        and {{ column_name }}::text !~ '^({{ pattern | replace("'", "''") }})$'
{% endtest %}
