{#- Rows where the expression is false (or the column fails "<column> <expression>"). -#}
{% test expression_is_true(model, expression, column_name=none) %}
select *
from {{ model }}
where not (
    {%- if column_name %} {{ column_name }} {% endif %} {{ expression }}
)
{% endtest %}
