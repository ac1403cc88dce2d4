{#-
    dbt's unique and not_null tests, for PostgreSQL, skip the scan when the catalog proves
    the rule: a valid, non-partial unique index on exactly that column (unique), or a NOT
    NULL column (not_null). PostgreSQL then enforces the rule on every write, so the scan
    could only return no rows; on the raw event log, the incremental tables and the marts
    (all indexed on their grain) it would read every row of every build. The proof is a
    one-time filter: when it fails (no such index or constraint, or the test has a `where`
    config and so tests a subquery) the test scans exactly as dbt's own does.
-#}

{% macro enforced_by_catalog(model, column_name, rule) -%}
    {%- if model is string or model.identifier is not defined -%}
        false
    {%- elif rule == 'unique' -%}
        exists (
            select 1
            from pg_index as i
            inner join pg_attribute as a on a.attrelid = i.indrelid and a.attnum = i.indkey[0]
            where i.indrelid = to_regclass('{{ model }}') and i.indisunique and i.indisvalid
                and i.indnkeyatts = 1 and i.indpred is null and i.indexprs is null
                and a.attname = '{{ column_name | replace('"', '') }}'
        )
    {%- else -%}
        exists (
            select 1 from pg_attribute as a
            where a.attrelid = to_regclass('{{ model }}') and a.attnotnull and not a.attisdropped
                and a.attname = '{{ column_name | replace('"', '') }}'
        )
    {%- endif -%}
{%- endmacro %}

{% macro postgres__test_unique(model, column_name) %}
select
    {{ column_name }} as unique_field,
    count(*) as n_records
from {{ model }}
where not {{ enforced_by_catalog(model, column_name, 'unique') }}
    and {{ column_name }} is not null
group by {{ column_name }}
having count(*) > 1
{% endmacro %}

{% macro postgres__test_not_null(model, column_name) %}
{% set column_list = '*' if should_store_failures() else column_name %}
select {{ column_list }}
from {{ model }}
where not {{ enforced_by_catalog(model, column_name, 'not_null') }}
    and {{ column_name }} is null
{% endmacro %}

{#-
    dbt's relationships test, for PostgreSQL, skips the anti-join when a validated foreign
    key from exactly that column to exactly that column of the parent proves the rule
    (vedfin's migrations declare them on `app`; a platform's own schema may not, and is
    then scanned as dbt's own test does).
-#}

{% macro enforced_by_foreign_key(model, column_name, to, field) -%}
    {%- if model is string or model.identifier is not defined
        or to is string or to.identifier is not defined -%}
        false
    {%- else -%}
        exists (
            select 1
            from pg_constraint as c
            inner join pg_attribute as a
                on a.attrelid = c.conrelid and a.attnum = c.conkey[1]
            inner join pg_attribute as p
                on p.attrelid = c.confrelid and p.attnum = c.confkey[1]
            where c.contype = 'f' and c.convalidated
                and c.conrelid = to_regclass('{{ model }}')
                and c.confrelid = to_regclass('{{ to }}')
                and cardinality(c.conkey) = 1
                and a.attname = '{{ column_name | replace('"', '') }}'
                and p.attname = '{{ field | replace('"', '') }}'
        )
    {%- endif -%}
{%- endmacro %}

{% macro postgres__test_relationships(model, column_name, to, field) %}
with child as (
    select {{ column_name }} as from_field
    from {{ model }}
    where not {{ enforced_by_foreign_key(model, column_name, to, field) }}
        and {{ column_name }} is not null
),

parent as (
    select {{ field }} as to_field
    from {{ to }}
)

select child.from_field
from child
left join parent
    on child.from_field = parent.to_field
where parent.to_field is null
{% endmacro %}
