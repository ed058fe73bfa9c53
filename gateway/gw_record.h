/* gw_record: the usage record of a finished model request (success, error, or client gone),
 * sent to the logger as a RECORD. Its fields are LiteLLM's spend-log columns plus the proxy's
 * own (attempts, timings, error code); see proto/PROTOCOL.md. It never contains a secret:
 * the caller's key appears only as its sha256. */
#ifndef GW_RECORD_H
#define GW_RECORD_H

#include <jansson.h>
#include <stdbool.h>

#include "gw_req.h"

/* Build the record of req. delivered: the answer reached the client. Caller owns it. */
json_t *gw_record_build(const gw_req_t *req, bool delivered);
/* Build and hand the record to the logger link (never blocks; counted when dropped). */
void gw_record_send(gw_req_t *req, bool delivered);

#endif
