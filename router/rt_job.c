#include "rt_job.h"

#include "lp_time.h"

#include <stdlib.h>
#include <string.h>

#include "lp_json.h"

rt_job_t *rt_job_new(lp_msg_t **request, const void *gw, size_t gwlen, void *owner)
{
    rt_job_t *self = lp_calloc(1, sizeof *self);
    self->request = *request;
    *request = NULL;
    memcpy(self->id, lp_msg_req_id(self->request), LP_REQ_ID_LEN);
    lp_req_id_format(self->id, self->idstr);
    self->gw = lp_malloc(gwlen);
    memcpy(self->gw, gw, gwlen); /* (gw may be the request's identity: before the keep) */
    self->gwlen = gwlen;
    lp_msg_keep(self->request); /* held until the last attempt ends */
    self->asked = lp_msg_meta_str(self->request, "model");
    self->group = self->asked;
    self->pinned = lp_msg_meta_str(self->request, "deployment");
    self->stream = lp_msg_meta_bool(self->request, "stream", false);
    self->test = lp_msg_meta_bool(self->request, "test", false);
    self->deployment = -1;
    self->owner = owner;
    self->received_ns = lp_mono_ns();
    return self;
}

void rt_job_destroy(rt_job_t **self_p)
{
    rt_job_t *self = *self_p;
    if (!self)
        return;
    lp_assert(!self->queued && !lp_timer_active(&self->timer));
    lp_msg_destroy(&self->request);
    json_decref(self->fallback_list);
    free(self->gw);
    free(self);
    *self_p = NULL;
}

void rt_jobq_push(rt_jobq_t *q, rt_job_t *job)
{
    lp_assert(!job->queued);
    job->qnext = NULL;
    job->qprev = q->tail;
    if (q->tail)
        q->tail->qnext = job;
    else
        q->head = job;
    q->tail = job;
    q->len++;
    job->queued = true;
}

void rt_jobq_remove(rt_jobq_t *q, rt_job_t *job)
{
    if (!job->queued)
        return;
    if (job->qprev)
        job->qprev->qnext = job->qnext;
    else
        q->head = job->qnext;
    if (job->qnext)
        job->qnext->qprev = job->qprev;
    else
        q->tail = job->qprev;
    job->qprev = job->qnext = NULL;
    job->queued = false;
    q->len--;
}

rt_job_t *rt_jobq_pop(rt_jobq_t *q)
{
    rt_job_t *job = q->head;
    if (job)
        rt_jobq_remove(q, job);
    return job;
}
