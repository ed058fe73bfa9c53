/* lg_audit: the audit log (LiteLLM_AuditLog). Key changes write their rows themselves
 * (lg_keys); this module builds the other two statements a gateway asks for: record an
 * admin action that changes no row (a config reload), and list the log with filters. */
#ifndef LG_AUDIT_H
#define LG_AUDIT_H

#include <jansson.h>

#include "lg_query.h"

/* "audit": meta changed_by, changed_by_api_key, action, table_name, object_id,
 * before_value, updated_values (objects). "audit_list": meta object_id, action, table_name,
 * changed_by, start_date, end_date (YYYY-MM-DD), limit, offset; answers
 * {"audit_logs": [...], "total": n}. -1 with a reason in err for a malformed request. */
LP_MUSTCHECK int lg_audit_build(const json_t *meta, lg_query_t *q, char *err);

#endif
