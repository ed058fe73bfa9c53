/* gw_metrics: GET /metrics in Prometheus' text format. The gateway counts every finished
 * model request from its usage record (requests by group, deployment and status; latency and
 * time-to-first-token histograms; tokens; spend; cache hits) and adds what the router last
 * reported (workers, credits, queue, per-deployment calls in flight and cooldowns) and its own
 * usage-record delivery figures. */
#ifndef GW_METRICS_H
#define GW_METRICS_H

#include <jansson.h>

#include "gw_record.h"
#include "gw_req.h"

typedef struct gw_metrics gw_metrics_t;

gw_metrics_t *gw_metrics_new(void);
void gw_metrics_destroy(gw_metrics_t **self_p);
/* Count one finished request from its usage record. */
void gw_metrics_observe(gw_metrics_t *self, const gw_record_t *record);
/* Keep the router's latest figures (meta of its HEARTBEAT; borrowed, copied). */
void gw_metrics_router(gw_metrics_t *self, const json_t *stats);
/* The /metrics handler. */
void gw_metrics_serve(gw_req_t *req);

#endif
