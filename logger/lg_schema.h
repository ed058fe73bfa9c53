/* lg_schema: the versioned SQL files of logger/sql/, compiled in. The logger applies them in
 * order at start-up; each is idempotent, and the applied versions are recorded in
 * "llm_proxy_migrations", so the schema upgrades in place on a database LiteLLM created. */
#ifndef LG_SCHEMA_H
#define LG_SCHEMA_H

typedef struct {
    int version;      /* NNN of NNN_name.sql */
    const char *name; /* file name without .sql */
    const char *sql;  /* the file's text */
} lg_migration_t;

extern const lg_migration_t lg_migrations[];
extern const unsigned lg_migrations_len;

#endif
