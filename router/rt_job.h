/* rt_job: one client request while the router owns it: who asked (gateway identity), the
 * original REQUEST (kept so a retry can resend its body without the gateway), which worker
 * and deployment have it now, and what has been tried. Jobs waiting for a worker with credit
 * sit in a bounded FIFO (rt_jobq). */
#ifndef RT_JOB_H
#define RT_JOB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "lp_loop.h"
#include "lp_msg.h"
#include "rt_pool.h"

/* Attempts remembered per job (retries + worker losses); more than any sane num_retries. */
#define RT_MAX_TRIES 32

typedef struct rt_job rt_job_t;
struct rt_job {
    uint8_t id[LP_REQ_ID_LEN];
    char idstr[LP_REQ_ID_STR_LEN];
    unsigned char *gw; /* gateway identity (owned) */
    size_t gwlen;
    lp_msg_t *request;  /* the gateway's REQUEST (owned); body shared with each attempt */
    const char *asked;  /* the group the client asked for (borrowed from request meta) */
    const char *group;  /* the group being tried: asked, or a fallback (borrowed) */
    const char *pinned; /* deployment id the gateway pinned (health checks), or NULL */
    bool test;          /* /health/test_connection: the worker builds the deployment itself */
    bool stream;
    json_t *fallback_list; /* groups to fall back to, once chosen (a reference: a reload may
                            * free the config it came from) */
    size_t fallback_next;
    int fallbacks;       /* groups fallen back to (x-litellm-attempted-fallbacks) */
    rt_worker_t *worker; /* current worker; NULL while queued or backing off */
    int deployment;      /* index of the current attempt's deployment, -1 before the first */
    int tried[RT_MAX_TRIES];
    size_t ntried;
    int attempts;          /* attempts sent to a worker */
    int retries;           /* attempts after failures (x-litellm-attempted-retries) */
    int group_retries;     /* retries within the current group (num_retries applies per group) */
    int worker_losses;     /* attempts lost with a dead worker */
    bool started;          /* bytes reached the gateway: never retried from here on */
    bool cancelled;        /* the client is gone: replies are dropped */
    lp_timer_t timer;      /* queue deadline or retry backoff */
    int64_t received_ns;   /* when the REQUEST arrived */
    int64_t dispatched_ns; /* when the current attempt left for a worker */
    rt_job_t *qprev, *qnext;
    bool queued;
    void *owner; /* the server */
};

/* A job for a REQUEST received from gateway identity gw (the message is taken). */
rt_job_t *rt_job_new(lp_msg_t **request, const void *gw, size_t gwlen, void *owner);
/* Free a job (its timer must be stopped and it must be out of the queue). */
void rt_job_destroy(rt_job_t **self_p);

typedef struct {
    rt_job_t *head, *tail;
    size_t len;
} rt_jobq_t;

/* Append / remove / pop the oldest. */
void rt_jobq_push(rt_jobq_t *q, rt_job_t *job);
void rt_jobq_remove(rt_jobq_t *q, rt_job_t *job);
rt_job_t *rt_jobq_pop(rt_jobq_t *q);

#endif
