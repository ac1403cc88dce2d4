{#- Custom schema names are used as they are: marts land in `marts`, not `<target>_marts`. -#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}
        {{ target.schema }}
    {%- else -%}
        {{ custom_schema_name | trim }}
    {%- endif -%}
{%- endmacro %}

{#- The read-only role BI tools use: no login by default (grant it to a login role). -#}
{% macro ensure_bi_reader() %}
do $$
begin
    if not exists (select 1 from pg_roles where rolname = 'bi_reader') then
        create role bi_reader nologin;
    end if;
end
$$;
{% endmacro %}

{#- bi_reader may use marts and nothing else: raw app data and audit stay closed. The grants
    of a schema app that belongs to the platform (there before vedfin) are the platform's:
    they are left alone. -#}
{% macro grant_marts_usage() %}
{% if execute %}
do $$
begin
    if exists (select 1 from pg_namespace where nspname = 'marts') then
        execute 'grant usage on schema marts to bi_reader';
    end if;
    if exists (select 1 from pg_namespace where nspname = 'app')
       and not exists (select 1 from vedfin_meta.schema_migrations
                       where version = '001' and checksum = 'platform') then
        execute 'revoke all on schema app from public, bi_reader';
        execute 'revoke all on all tables in schema app from public, bi_reader';
    end if;
    if exists (select 1 from pg_namespace where nspname = 'audit') then
        execute 'revoke all on schema audit from public, bi_reader';
    end if;
    -- the admin browser of `vedfin db roles` keeps its grants on the rebuilt marts: all in
    -- dev, select elsewhere (its environment is in the role's comment)
    if exists (select 1 from pg_roles where rolname = 'vedfin_admin_browser')
       and exists (select 1 from pg_namespace where nspname = 'marts') then
        if shobj_description((select oid from pg_roles where rolname = 'vedfin_admin_browser'),
                             'pg_authid') = 'vedfin environment: dev' then
            execute 'grant all on all tables in schema marts to vedfin_admin_browser';
        else
            execute 'grant select on all tables in schema marts to vedfin_admin_browser';
        end if;
    end if;
end
$$;
{% endif %}
{% endmacro %}
