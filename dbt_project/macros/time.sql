{#- One definition of local time, the as-of date and the incremental window. -#}

{% macro reporting_tz() -%}
'{{ var("reporting_tz") }}'
{%- endmacro %}

{#- The as-of date: the dbt var as_of_date when set (dbt's --vars, unit test overrides);
    otherwise, while models run, the environment variable VEDFIN_AS_OF_DATE (what `vedfin
    build` and the Dagster dbt step set: unlike a new --vars value, it leaves dbt's partial
    parsing on, because nothing reads it while the project is parsed); otherwise today in
    reporting_tz. -#}
{% macro as_of_date_value() -%}
    {%- set configured = var("as_of_date", "") -%}
    {%- if (configured is none or configured | string | trim == "") and execute -%}
        {%- set configured = env_var("VEDFIN_AS_OF_DATE", "") -%}
    {%- endif -%}
    {%- if configured is none or configured | string | trim == "" -%}
        {{- return(modules.datetime.datetime.now(modules.pytz.timezone(var("reporting_tz"))).strftime("%Y-%m-%d")) -}}
    {%- endif -%}
    {%- set text = configured | string | trim -%}
    {%- if not modules.re.match("^[0-9]{4}-[0-9]{2}-[0-9]{2}$", text) -%}
        {{- exceptions.raise_compiler_error("as_of_date (var or VEDFIN_AS_OF_DATE) must be YYYY-MM-DD, got '" ~ text ~ "'") -}}
    {%- endif -%}
    {{- return(text) -}}
{%- endmacro %}

{#- The as-of date as a SQL date literal. -#}
{% macro as_of_date() -%}
date '{{ as_of_date_value() }}'
{%- endmacro %}

{#- The instant a local date (a SQL date expression) begins: ts >= local_day_start(d) is
    the same as local_date(ts) >= d, compared with a constant instead of converting every
    row's timestamp. -#}
{% macro local_day_start(date_expr) -%}
(({{ date_expr }})::timestamp at time zone {{ reporting_tz() }})
{%- endmacro %}

{#- The first instant after as_of_date ends locally: facts count when ts < as_of_end(). -#}
{% macro as_of_end() -%}
{{ local_day_start("date '" ~ as_of_date_value() ~ "' + 1") }}
{%- endmacro %}

{% macro local_ts(column) -%}
({{ column }} at time zone {{ reporting_tz() }})
{%- endmacro %}

{% macro local_date(column) -%}
cast({{ local_ts(column) }} as date)
{%- endmacro %}

{#- ISO week (Monday) that contains a date. -#}
{% macro week_start(date_expr) -%}
cast(date_trunc('week', {{ date_expr }}) as date)
{%- endmacro %}

{% macro incremental_start_date() -%}
(date '{{ as_of_date_value() }}' - {{ var("lookback_days") }})
{%- endmacro %}

{#- The value of a scalar query (on the model's own table, usually), as a SQL constant of
    `type`, read just before the model runs. Incremental bounds written as constants let
    every PostgreSQL version estimate them from its statistics and use the indexes; as a
    subquery they are parameters the planner can only guess (a third of the table), and
    15 and 16 then scan whole tables. Unit tests (whose `this` is a fixture) and parsing
    keep the subquery. -#}
{% macro constant_of(sql, type) -%}
    {%- if execute and model.resource_type != 'unit_test' -%}
        {%- set value = run_query("select cast((" ~ sql ~ ") as text)").columns[0].values()[0] -%}
        {%- if value is none -%}
            cast(null as {{ type }})
        {%- else -%}
            cast('{{ value }}' as {{ type }})
        {%- endif -%}
    {%- else -%}
        cast(({{ sql }}) as {{ type }})
    {%- endif -%}
{%- endmacro %}

{#- The first local date an incremental run recomputes: lookback_days before as_of_date, or
    lookback_days before the last date the previous run covered when that is earlier (the
    runs in between were missed, or as_of_date jumped ahead), so no date is skipped.
    last_date_sql: a scalar query on {{ this }} for the last date it covers (null: empty). -#}
{% macro incremental_window_start_date(last_date_sql) -%}
{{ constant_of(
    "select least(" ~ incremental_start_date() ~ ", coalesce((" ~ last_date_sql ~ ") - "
    ~ var("lookback_days") ~ ", " ~ incremental_start_date() ~ "))",
    'date'
) }}
{%- endmacro %}

{#- Incremental runs also pick up every event ingested since the previous run, whatever its
    date: events whose ingested_at is at or after the latest ingested_at the model has
    already processed, minus arrival_margin_minutes (rows of transactions that committed
    after a later one). The watermark never passes the end of as_of_date, so a row stamped
    in the future cannot hide the rows after it. watermark_sql: a scalar query on {{ this }}
    (null: empty). -#}
{% macro arrived_after(watermark_sql) -%}
{{ constant_of(
    "select least(coalesce((" ~ watermark_sql ~ "), '-infinity'::timestamptz), " ~ as_of_end()
    ~ ") - interval '" ~ var("arrival_margin_minutes") ~ " minutes'",
    'timestamptz'
) }}
{%- endmacro %}

{#- The values of a one-column query as a SQL list of constants of `type`, for `x in (...)`
    (an empty list is `(null)`, which matches nothing); the subquery itself in unit tests. -#}
{% macro constant_list(sql, type) -%}
    {%- if execute and model.resource_type != 'unit_test' -%}
        {%- set values = run_query("select distinct cast(v as text) from (" ~ sql ~ ") as q(v) where v is not null order by 1").columns[0].values() -%}
        {%- if values | length == 0 -%}
            (cast(null as {{ type }}))
        {%- else -%}
            ({% for v in values %}cast('{{ v }}' as {{ type }}){{ ', ' if not loop.last }}{% endfor %})
        {%- endif -%}
    {%- else -%}
        ({{ sql }})
    {%- endif -%}
{%- endmacro %}
