{#- Fails for every non-null value that does not match the POSIX regular
    expression `pattern` as a whole. -#}
{% test matches_pattern(model, column_name, pattern) %}
    select {{ column_name }} as unmatched_value
    from {{ model }}
    where {{ column_name }} is not null
        and {{ column_name }}::text !~ '^({{ pattern | replace("'", "''") }})$'
{% endtest %}
