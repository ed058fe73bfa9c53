/* test_router: deployment selection and state (rt_balance), the worker pool (rt_pool) and
 * the job queue (rt_job). */
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "lp_cfg.h"
#include "lp_msg.h"
#include "rt_job.h"
#include "rt_pool.h"
#include "lp_time.h"
#include "rt_balance.h"

#define DRAWS 100000

/* A config with group g (3 deployments, the given litellm_params extras) and group other
 * interleaved between them. */
static lp_cfg_t *make_cfg(const char *p0, const char *p1, const char *p2)
{
    setenv("LITELLM_MASTER_KEY", "sk-unit-test-router-0123456789", 1);
    char text[2048];
    snprintf(text, sizeof text,
             "model_list:\n"
             "  - model_name: g\n"
             "    litellm_params: {model: openai/a%s}\n"
             "  - model_name: other\n"
             "    litellm_params: {model: openai/x}\n"
             "  - model_name: g\n"
             "    litellm_params: {model: openai/b%s}\n"
             "  - model_name: g\n"
             "    litellm_params: {model: openai/c%s}\n"
             "  - model_name: other\n"
             "    litellm_params: {model: openai/y}\n",
             p0, p1, p2);
    char err[LP_ERR_LEN] = "";
    lp_cfg_t *cfg = lp_cfg_load_string(text, "router.yaml", err);
    if (!cfg)
        fprintf(stderr, "config: %s\n", err);
    return cfg;
}

/* Indexes of g's deployments in cfg->deployments. */
static const int G[3] = {0, 2, 3};

/* Draw DRAWS times; counts[k] for G[k]; false if anything outside g came back. */
static bool draw(const lp_cfg_t *cfg, const int *tried, size_t ntried, uint64_t seed,
                 long counts[3])
{
    rt_balance_t *b = rt_balance_new(cfg, RT_SHUFFLE, seed);
    counts[0] = counts[1] = counts[2] = 0;
    bool ok = true;
    rt_pick_t why;
    int64_t retry;
    for (int i = 0; ok && i < DRAWS; i++) {
        int idx = rt_balance_pick(b, "g", tried, ntried, 0, &why, &retry);
        int k = idx == G[0] ? 0 : idx == G[1] ? 1 : idx == G[2] ? 2 : -1;
        if (k < 0)
            ok = false;
        else
            counts[k]++;
    }
    rt_balance_destroy(&b);
    return ok;
}

/* The share of counts[k] is within 2 percentage points of pct. */
static bool share_near(const long counts[3], int k, double pct)
{
    double share = 100.0 * (double)counts[k] / DRAWS;
    return share > pct - 2.0 && share < pct + 2.0;
}

static void test_random(void)
{
    uint64_t a = 12345, b = 12345;
    double sum = 0;
    bool in_range = true, same = true;
    for (int i = 0; i < 10000; i++) {
        double x = rt_random(&a);
        in_range = in_range && x >= 0 && x < 1;
        same = same && x == rt_random(&b);
        sum += x;
    }
    CHECK(in_range);
    CHECK(same);
    CHECK(a != 0 && a != 12345);
    CHECK(sum / 10000 > 0.47 && sum / 10000 < 0.53);
}

static void test_select_weights(void)
{
    lp_cfg_t *cfg = make_cfg(", weight: 1", ", weight: 2", ", weight: 7");
    CHECK(cfg != NULL);
    long c[3];
    bool ok = draw(cfg, NULL, 0, 0x9e3779b97f4a7c15ULL, c);
    lp_cfg_destroy(&cfg);
    CHECK(ok);
    CHECK(share_near(c, 0, 10));
    CHECK(share_near(c, 1, 20));
    CHECK(share_near(c, 2, 70));
}

static void test_select_weights_beat_rpm(void)
{
    /* weight takes precedence over rpm when any deployment has one */
    lp_cfg_t *cfg =
        make_cfg(", weight: 7, rpm: 1", ", weight: 2, rpm: 1", ", weight: 1, rpm: 1000");
    CHECK(cfg != NULL);
    long c[3];
    bool ok = draw(cfg, NULL, 0, 42, c);
    lp_cfg_destroy(&cfg);
    CHECK(ok);
    CHECK(share_near(c, 0, 70));
    CHECK(share_near(c, 1, 20));
    CHECK(share_near(c, 2, 10));
}

static void test_select_rpm(void)
{
    lp_cfg_t *cfg = make_cfg(", rpm: 100", ", rpm: 200", ", rpm: 700");
    CHECK(cfg != NULL);
    long c[3];
    bool ok = draw(cfg, NULL, 0, 7, c);
    lp_cfg_destroy(&cfg);
    CHECK(ok);
    CHECK(share_near(c, 0, 10));
    CHECK(share_near(c, 1, 20));
    CHECK(share_near(c, 2, 70));
}

static void test_select_tpm(void)
{
    lp_cfg_t *cfg = make_cfg(", tpm: 5000", ", tpm: 5000", ", tpm: 10000");
    CHECK(cfg != NULL);
    long c[3];
    bool ok = draw(cfg, NULL, 0, 99, c);
    lp_cfg_destroy(&cfg);
    CHECK(ok);
    CHECK(share_near(c, 0, 25));
    CHECK(share_near(c, 1, 25));
    CHECK(share_near(c, 2, 50));
}

static void test_select_uniform(void)
{
    lp_cfg_t *cfg = make_cfg("", "", "");
    CHECK(cfg != NULL);
    long c[3];
    bool ok = draw(cfg, NULL, 0, 2024, c);
    lp_cfg_destroy(&cfg);
    CHECK(ok);
    CHECK(share_near(c, 0, 100.0 / 3));
    CHECK(share_near(c, 1, 100.0 / 3));
    CHECK(share_near(c, 2, 100.0 / 3));
}

static void test_select_tried(void)
{
    lp_cfg_t *cfg = make_cfg(", weight: 1", ", weight: 2", ", weight: 7");
    CHECK(cfg != NULL);
    long c[3];
    /* the heavy one was tried: the others share 1:2 */
    int tried1[] = {G[2]};
    bool ok1 = draw(cfg, tried1, 1, 5, c);
    bool shares1 = c[2] == 0 && share_near(c, 0, 100.0 / 3) && share_near(c, 1, 200.0 / 3);
    /* two tried: always the third */
    int tried2[] = {G[0], G[2]};
    bool ok2 = draw(cfg, tried2, 2, 6, c);
    bool only1 = c[1] == DRAWS;
    /* all tried: reused with their weights */
    int tried3[] = {G[1], G[0], G[2]};
    bool ok3 = draw(cfg, tried3, 3, 8, c);
    bool shares3 = share_near(c, 0, 10) && share_near(c, 1, 20) && share_near(c, 2, 70);
    /* indexes outside the group in tried change nothing */
    int tried4[] = {1, 4, 99};
    bool ok4 = draw(cfg, tried4, 3, 9, c);
    bool shares4 = share_near(c, 0, 10) && share_near(c, 1, 20) && share_near(c, 2, 70);
    lp_cfg_destroy(&cfg);
    CHECK(ok1 && ok2 && ok3 && ok4);
    CHECK(shares1);
    CHECK(only1);
    CHECK(shares3);
    CHECK(shares4);
}

static void test_select_tried_falls_back_basis(void)
{
    /* only the tried deployment has a weight: the untried ones are picked uniformly */
    lp_cfg_t *cfg = make_cfg(", weight: 5", "", "");
    CHECK(cfg != NULL);
    long c[3];
    int tried[] = {G[0]};
    bool ok = draw(cfg, tried, 1, 11, c);
    lp_cfg_destroy(&cfg);
    CHECK(ok);
    CHECK(c[0] == 0);
    CHECK(share_near(c, 1, 50) && share_near(c, 2, 50));
}

static void test_select_order(void)
{
    /* order 1 before order 2 before no order; the next tier only once the first was tried */
    lp_cfg_t *cfg = make_cfg(", order: 2", "", ", order: 1");
    CHECK(cfg != NULL);
    long c[3];
    bool ok1 = draw(cfg, NULL, 0, 21, c);
    bool first = c[2] == DRAWS;
    int tried1[] = {G[2]};
    bool ok2 = draw(cfg, tried1, 1, 22, c);
    bool second = c[0] == DRAWS;
    int tried2[] = {G[2], G[0]};
    bool ok3 = draw(cfg, tried2, 2, 23, c);
    bool last = c[1] == DRAWS;
    lp_cfg_destroy(&cfg);
    CHECK(ok1 && ok2 && ok3);
    CHECK(first);
    CHECK(second);
    CHECK(last);
}

static void test_select_groups(void)
{
    lp_cfg_t *cfg = make_cfg("", "", "");
    CHECK(cfg != NULL);
    rt_balance_t *b = rt_balance_new(cfg, RT_SHUFFLE, 77);
    int n1 = 0, n4 = 0;
    bool only_other = true;
    rt_pick_t why = RT_PICK_OK, why2 = RT_PICK_OK;
    int64_t retry;
    for (int i = 0; i < 1000; i++) {
        int idx = rt_balance_pick(b, "other", NULL, 0, 0, &why, &retry);
        only_other = only_other && (idx == 1 || idx == 4);
        n1 += idx == 1;
        n4 += idx == 4;
    }
    int unknown = rt_balance_pick(b, "nope", NULL, 0, 0, &why, &retry);
    int empty = rt_balance_pick(b, "", NULL, 0, 0, &why2, &retry);
    int tried[] = {0, 2, 3};
    int unknown_tried = rt_balance_pick(b, "nope", tried, 3, 0, &why, &retry);
    rt_balance_destroy(&b);
    lp_cfg_destroy(&cfg);
    CHECK(why == RT_PICK_NO_GROUP && why2 == RT_PICK_NO_GROUP);
    CHECK(only_other);
    CHECK(n1 > 400 && n4 > 400);
    CHECK(unknown == -1);
    CHECK(empty == -1);
    CHECK(unknown_tried == -1);
}

static void test_least_busy(void)
{
    lp_cfg_t *cfg = make_cfg("", "", "");
    CHECK(cfg != NULL);
    rt_balance_t *b = rt_balance_new(cfg, RT_LEAST_BUSY, 3);
    rt_pick_t why;
    int64_t retry;
    /* Each pick goes to an idle deployment until all are busy, then to the least busy. */
    int seen[5] = {0};
    for (int i = 0; i < 3; i++) {
        int idx = rt_balance_pick(b, "g", NULL, 0, 0, &why, &retry);
        rt_balance_started(b, idx, 0);
        seen[idx]++;
    }
    bool spread = seen[G[0]] == 1 && seen[G[1]] == 1 && seen[G[2]] == 1;
    rt_balance_released(b, G[1]);
    int next = rt_balance_pick(b, "g", NULL, 0, 0, &why, &retry);
    rt_balance_destroy(&b);
    lp_cfg_destroy(&cfg);
    CHECK(spread);
    CHECK(next == G[1]);
}

static void test_latency_based(void)
{
    lp_cfg_t *cfg = make_cfg("", "", "");
    CHECK(cfg != NULL);
    rt_balance_t *b = rt_balance_new(cfg, RT_LATENCY, 5);
    rt_balance_started(b, G[0], 0);
    rt_balance_succeeded(b, G[0], 0, 10, 50000);
    rt_balance_started(b, G[1], 0);
    rt_balance_succeeded(b, G[1], 0, 10, 5000);
    rt_balance_started(b, G[2], 0);
    rt_balance_succeeded(b, G[2], 0, 10, 90000);
    rt_pick_t why;
    int64_t retry;
    long c[5] = {0};
    for (int i = 0; i < 10000; i++)
        c[rt_balance_pick(b, "g", NULL, 0, 0, &why, &retry)]++;
    rt_balance_destroy(&b);
    lp_cfg_destroy(&cfg);
    /* The fastest most of the time; the others still explored now and then. */
    CHECK(c[G[1]] > 9000);
    CHECK(c[G[0]] > 100 && c[G[2]] > 100);
}

static void test_usage_based_and_limits(void)
{
    lp_cfg_t *cfg = make_cfg(", tpm: 1000", ", rpm: 2", "");
    CHECK(cfg != NULL);
    rt_balance_t *b = rt_balance_new(cfg, RT_USAGE, 9);
    int64_t now = 5 * RT_WINDOW_NS + 1;
    rt_pick_t why;
    int64_t retry;
    rt_balance_started(b, G[0], now);
    rt_balance_succeeded(b, G[0], now, 1000, 10); /* a: at its tpm */
    rt_balance_started(b, G[2], now);
    rt_balance_succeeded(b, G[2], now, 300, 10);
    /* b has used nothing: lowest usage */
    int first = rt_balance_pick(b, "g", NULL, 0, now, &why, &retry);
    rt_balance_started(b, G[1], now);
    rt_balance_succeeded(b, G[1], now, 500, 10);
    rt_balance_started(b, G[1], now);
    rt_balance_succeeded(b, G[1], now, 1, 10); /* b: at its rpm (2 requests) */
    int second = rt_balance_pick(b, "g", NULL, 0, now, &why, &retry);
    rt_balance_started(b, G[2], now);
    rt_balance_started(b, G[2], now);
    /* c has no limit; a and b are over theirs for this minute */
    int third = rt_balance_pick(b, "g", NULL, 0, now, &why, &retry);
    /* next minute: counters start again */
    int later = rt_balance_pick(b, "g", NULL, 0, now + RT_WINDOW_NS, &why, &retry);
    rt_balance_destroy(&b);
    lp_cfg_destroy(&cfg);
    CHECK(first == G[1]);
    CHECK(second == G[2]);
    CHECK(third == G[2]);
    CHECK(later >= 0);
}

static void test_all_limited(void)
{
    lp_cfg_t *cfg = make_cfg(", rpm: 1", ", rpm: 1", ", rpm: 1");
    CHECK(cfg != NULL);
    rt_balance_t *b = rt_balance_new(cfg, RT_SHUFFLE, 9);
    int64_t now = 7 * RT_WINDOW_NS + 10 * LP_NS_PER_S;
    for (int k = 0; k < 3; k++)
        rt_balance_started(b, G[k], now);
    rt_pick_t why = RT_PICK_OK;
    int64_t retry = 0;
    int idx = rt_balance_pick(b, "g", NULL, 0, now, &why, &retry);
    rt_balance_destroy(&b);
    lp_cfg_destroy(&cfg);
    CHECK(idx == -1);
    CHECK(why == RT_PICK_LIMITED);
    CHECK(retry == 50000); /* the rest of the minute */
}

static void test_cooldown(void)
{
    setenv("LITELLM_MASTER_KEY", "sk-unit-test-router-0123456789", 1);
    char err[LP_ERR_LEN] = "";
    lp_cfg_t *cfg = lp_cfg_load_string("model_list:\n"
                                       "  - {model_name: g, litellm_params: {model: openai/a}}\n"
                                       "  - {model_name: g, litellm_params: {model: openai/b}}\n"
                                       "router_settings: {allowed_fails: 1, cooldown_time: 30}\n",
                                       "cool.yaml", err);
    CHECK(cfg != NULL);
    rt_balance_t *b = rt_balance_new(cfg, RT_SHUFFLE, 1);
    int64_t now = 100 * RT_WINDOW_NS;
    rt_pick_t why = RT_PICK_OK;
    int64_t retry = 0;
    /* A client error does not count; one failure is allowed; the second cools a down. */
    rt_balance_started(b, 0, now);
    rt_balance_failed(b, 0, now, 400, -1);
    rt_balance_started(b, 0, now);
    rt_balance_failed(b, 0, now, 500, -1);
    bool warm = !rt_balance_cooling(b, 0, now);
    rt_balance_started(b, 0, now);
    rt_balance_failed(b, 0, now, 502, -1);
    bool cooled = rt_balance_cooling(b, 0, now + 29 * LP_NS_PER_S);
    bool back = !rt_balance_cooling(b, 0, now + 31 * LP_NS_PER_S);
    int only_b = 1;
    for (int i = 0; i < 100; i++)
        only_b &= rt_balance_pick(b, "g", NULL, 0, now + LP_NS_PER_S, &why, &retry) == 1;
    /* A 429 with retry-after cools b at once, for that long. */
    rt_balance_started(b, 1, now);
    rt_balance_failed(b, 1, now, 429, 2000);
    int none = rt_balance_pick(b, "g", NULL, 0, now + LP_NS_PER_S, &why, &retry);
    int64_t left = retry;
    bool b_back = !rt_balance_cooling(b, 1, now + 2 * LP_NS_PER_S + 1);
    int inflight = rt_balance_inflight(b, 0) + rt_balance_inflight(b, 1);
    rt_balance_destroy(&b);
    lp_cfg_destroy(&cfg);
    CHECK(warm);
    CHECK(cooled);
    CHECK(back);
    CHECK(only_b);
    CHECK(none == -1 && why == RT_PICK_COOLING);
    CHECK(left == 1000);
    CHECK(b_back);
    CHECK(inflight == 0);
}

static void test_strategy_names(void)
{
    rt_strategy_t s;
    CHECK(rt_strategy_parse("simple-shuffle", &s) && s == RT_SHUFFLE);
    CHECK(rt_strategy_parse("least-busy", &s) && s == RT_LEAST_BUSY);
    CHECK(rt_strategy_parse("latency-based-routing", &s) && s == RT_LATENCY);
    CHECK(rt_strategy_parse("usage-based-routing", &s) && s == RT_USAGE);
    CHECK(rt_strategy_parse("usage-based-routing-v2", &s) && s == RT_USAGE);
    CHECK(!rt_strategy_parse("cost-based-routing", &s));
}

/* ---- rt_pool ---- */

static void test_pool_pick(void)
{
    rt_pool_t *pool = rt_pool_new();
    CHECK(pool != NULL);
    CHECK(rt_pool_pick(pool) == NULL);
    CHECK(rt_pool_size(pool) == 0);
    CHECK(rt_pool_credits(pool) == 0);
    rt_worker_t *a = rt_pool_add(pool, "wa", 2, 2, "1@a");
    rt_worker_t *b = rt_pool_add(pool, "wb", 2, 5, "2@b");
    rt_worker_t *c = rt_pool_add(pool, "wc", 2, 3, "3@c");
    bool ok = rt_pool_size(pool) == 3 && rt_pool_credits(pool) == 10;
    /* most free credits wins */
    ok = ok && rt_pool_pick(pool) == b;
    b->inflight = 4; /* b: 1 free, c: 3 free, a: 2 free */
    ok = ok && rt_pool_pick(pool) == c && rt_pool_credits(pool) == 6;
    /* a draining worker is never picked, and its credits do not count */
    c->draining = true;
    ok = ok && rt_pool_pick(pool) == a && rt_pool_credits(pool) == 3;
    for (int i = 0; i < 10; i++)
        ok = ok && rt_pool_pick(pool) != c;
    /* all full (or draining) */
    a->inflight = 2;
    b->inflight = 5;
    ok = ok && rt_pool_pick(pool) == NULL && rt_pool_credits(pool) == 0;
    /* over-committed workers do not subtract from the sum */
    a->inflight = 9;
    c->draining = false;
    ok = ok && rt_pool_credits(pool) == 3 && rt_pool_pick(pool) == c;
    rt_pool_destroy(&pool);
    CHECK(pool == NULL);
    rt_pool_destroy(&pool);
    CHECK(ok);
}

static void test_pool_ties_rotate(void)
{
    rt_pool_t *pool = rt_pool_new();
    rt_worker_t *w[3];
    w[0] = rt_pool_add(pool, "w0", 2, 4, "w0");
    w[1] = rt_pool_add(pool, "w1", 2, 4, "w1");
    w[2] = rt_pool_add(pool, "w2", 2, 4, "w2");
    int seen[3] = {0, 0, 0};
    for (int i = 0; i < 30; i++) {
        rt_worker_t *p = rt_pool_pick(pool);
        for (int k = 0; k < 3; k++)
            seen[k] += p == w[k];
    }
    rt_pool_destroy(&pool);
    CHECK(seen[0] == 10 && seen[1] == 10 && seen[2] == 10);
}

static void test_pool_get_remove(void)
{
    rt_pool_t *pool = rt_pool_new();
    char longname[100];
    memset(longname, 'n', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    rt_worker_t *a = rt_pool_add(pool, "id\0a", 4, 1, longname);
    rt_worker_t *b = rt_pool_add(pool, "id\0b", 4, 1, "b");
    bool ok = strlen(a->name) == sizeof a->name - 1 && a->idlen == 4 &&
              memcmp(a->identity, "id\0a", 4) == 0;
    ok = ok && rt_pool_get(pool, "id\0a", 4) == a && rt_pool_get(pool, "id\0b", 4) == b;
    ok = ok && rt_pool_get(pool, "id", 2) == NULL && rt_pool_get(pool, "id\0c", 4) == NULL;
    /* many workers: the array grows */
    char id[16];
    for (int i = 0; i < 40; i++) {
        int n = snprintf(id, sizeof id, "w%d", i);
        rt_pool_add(pool, id, (size_t)n, 1, id);
    }
    ok = ok && rt_pool_size(pool) == 42 && rt_pool_credits(pool) == 42;
    rt_pool_remove(pool, a);
    ok = ok && rt_pool_size(pool) == 41 && rt_pool_get(pool, "id\0a", 4) == NULL &&
         rt_pool_get(pool, "id\0b", 4) == b && rt_pool_get(pool, "w39", 3) != NULL;
    size_t found = 0;
    for (size_t i = 0; i < rt_pool_size(pool); i++)
        found += rt_pool_at(pool, i) != NULL;
    ok = ok && found == 41 && rt_pool_at(pool, 41) == NULL;
    /* removing every worker, then picking, is safe */
    while (rt_pool_size(pool) > 0)
        rt_pool_remove(pool, rt_pool_at(pool, 0));
    ok = ok && rt_pool_pick(pool) == NULL && rt_pool_credits(pool) == 0;
    rt_pool_destroy(&pool);
    CHECK(ok);
}

/* ---- rt_job / rt_jobq ---- */

static rt_job_t *bare_job(int tag)
{
    rt_job_t *j = lp_calloc(1, sizeof *j);
    j->deployment = tag;
    return j;
}

static bool queue_is(const rt_jobq_t *q, const int *tags, size_t n)
{
    if (q->len != n)
        return false;
    const rt_job_t *j = q->head;
    const rt_job_t *prev = NULL;
    for (size_t i = 0; i < n; i++) {
        if (!j || j->deployment != tags[i] || j->qprev != prev || !j->queued)
            return false;
        prev = j;
        j = j->qnext;
    }
    return j == NULL && q->tail == prev;
}

static void test_jobq(void)
{
    rt_jobq_t q = {0};
    rt_job_t *j[5];
    for (int i = 0; i < 5; i++)
        j[i] = bare_job(i);
    CHECK(rt_jobq_pop(&q) == NULL);
    for (int i = 0; i < 5; i++)
        rt_jobq_push(&q, j[i]);
    bool ok = queue_is(&q, (int[]){0, 1, 2, 3, 4}, 5);
    /* remove the middle, the head and the tail */
    rt_jobq_remove(&q, j[2]);
    ok = ok && !j[2]->queued && queue_is(&q, (int[]){0, 1, 3, 4}, 4);
    rt_jobq_remove(&q, j[0]);
    ok = ok && queue_is(&q, (int[]){1, 3, 4}, 3);
    rt_jobq_remove(&q, j[4]);
    ok = ok && queue_is(&q, (int[]){1, 3}, 2);
    /* removing a job that is not queued is a no-op */
    rt_jobq_remove(&q, j[4]);
    ok = ok && queue_is(&q, (int[]){1, 3}, 2);
    /* re-queued jobs go to the back */
    rt_jobq_push(&q, j[0]);
    ok = ok && queue_is(&q, (int[]){1, 3, 0}, 3);
    /* pop: oldest first */
    rt_job_t *p1 = rt_jobq_pop(&q);
    rt_job_t *p2 = rt_jobq_pop(&q);
    rt_job_t *p3 = rt_jobq_pop(&q);
    rt_job_t *p4 = rt_jobq_pop(&q);
    ok = ok && p1 == j[1] && p2 == j[3] && p3 == j[0] && p4 == NULL;
    ok = ok && q.len == 0 && q.head == NULL && q.tail == NULL;
    ok = ok && !p1->queued && p1->qnext == NULL && p1->qprev == NULL;
    /* the only element: push, remove */
    rt_jobq_push(&q, j[2]);
    rt_jobq_remove(&q, j[2]);
    ok = ok && q.len == 0 && q.head == NULL && q.tail == NULL;
    for (int i = 0; i < 5; i++)
        rt_job_destroy(&j[i]);
    CHECK(ok);
}

static void test_job_new(void)
{
    uint8_t rid[LP_REQ_ID_LEN];
    for (int i = 0; i < LP_REQ_ID_LEN; i++)
        rid[i] = (uint8_t)(0xa0 + i);
    lp_msg_t *req = lp_msg_new(LP_CMD_REQUEST, rid);
    json_object_set_new(lp_msg_meta_rw(req), "model", json_string("gpt-4o"));
    lp_msg_set_body(req, "{}", 2);
    int owner = 0;
    rt_job_t *job = rt_job_new(&req, "gw\0id", 5, &owner);
    CHECK(job != NULL);
    bool ok = req == NULL && job->request != NULL && memcmp(job->id, rid, LP_REQ_ID_LEN) == 0 &&
              strcmp(job->idstr, "a0a1a2a3-a4a5-a6a7-a8a9-aaabacadaeaf") == 0 && job->gwlen == 5 &&
              memcmp(job->gw, "gw\0id", 5) == 0 && job->group &&
              strcmp(job->group, "gpt-4o") == 0 && job->deployment == -1 && job->owner == &owner &&
              job->worker == NULL && job->ntried == 0 && !job->queued &&
              !lp_timer_active(&job->timer);
    rt_jobq_t q = {0};
    rt_jobq_push(&q, job);
    ok = ok && rt_jobq_pop(&q) == job;
    rt_job_destroy(&job);
    CHECK(job == NULL);
    rt_job_destroy(&job);
    CHECK(ok);
}

int main(void)
{
    RUN(test_random);
    RUN(test_select_weights);
    RUN(test_select_weights_beat_rpm);
    RUN(test_select_rpm);
    RUN(test_select_tpm);
    RUN(test_select_uniform);
    RUN(test_select_tried);
    RUN(test_select_tried_falls_back_basis);
    RUN(test_select_order);
    RUN(test_select_groups);
    RUN(test_least_busy);
    RUN(test_latency_based);
    RUN(test_usage_based_and_limits);
    RUN(test_all_limited);
    RUN(test_cooldown);
    RUN(test_strategy_names);
    RUN(test_pool_pick);
    RUN(test_pool_ties_rotate);
    RUN(test_pool_get_remove);
    RUN(test_jobq);
    RUN(test_job_new);
    return th_report();
}
