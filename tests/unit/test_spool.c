/* test_spool: lg_spool, the logger's durable queue, on a real file: lines come back whole
 * and in order, a half-written last line is cut at open, the size limit refuses records, and
 * under steady traffic (never all committed at once) the disk holds the backlog, not the
 * history. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "lg_spool.h"

static char s_path[64];

static lg_spool_t *fresh(off_t max, const char *content)
{
    snprintf(s_path, sizeof s_path, "/tmp/test_spool.%d", (int)getpid());
    FILE *f = fopen(s_path, "w");
    if (!f)
        return NULL;
    fputs(content, f);
    fclose(f);
    char err[LP_ERR_LEN];
    return lg_spool_open(s_path, max, err);
}

static void test_lines_round_trip(void)
{
    lg_spool_t *sp = fresh(LG_SPOOL_MAX, "one\ntwo\nthr");
    CHECK(sp != NULL);
    struct stat st;
    CHECK(stat(s_path, &st) == 0 && st.st_size == 8); /* "thr" was cut */
    CHECK(lg_spool_add(sp, "four", 4) == 0 && lg_spool_sync(sp) == 0);
    lp_buf_t buf = {0};
    off_t end = 0;
    CHECK(lg_spool_read(sp, 10, &buf, &end) == 3);
    size_t off = 0, len = 0;
    const char *want[] = {"one", "two", "four"};
    for (size_t i = 0; i < 3; i++) {
        const char *line = lg_spool_line(&buf, &off, &len);
        CHECK(line && len == strlen(want[i]) && !memcmp(line, want[i], len));
    }
    CHECK(lg_spool_line(&buf, &off, &len) == NULL);
    lp_buf_free(&buf);
    lg_spool_commit(sp, end);
    CHECK(stat(s_path, &st) == 0 && st.st_size == 0); /* all committed: truncated */
    lg_spool_destroy(&sp);
    unlink(s_path);
}

static void test_limit_refuses(void)
{
    lg_spool_t *sp = fresh(100, "");
    CHECK(sp != NULL);
    char line[40];
    memset(line, 'x', sizeof line);
    CHECK(lg_spool_add(sp, line, sizeof line) == 0);
    CHECK(lg_spool_add(sp, line, sizeof line) == 0);
    CHECK(lg_spool_add(sp, line, sizeof line) < 0); /* 123 bytes > 100 */
    CHECK(lg_spool_sync(sp) == 0);
    lg_spool_destroy(&sp);
    unlink(s_path);
}

static void test_steady_traffic_keeps_disk_bounded(void)
{
    lg_spool_t *sp = fresh(LG_SPOOL_PUNCH * 4, "");
    CHECK(sp != NULL);
    static char line[1000];
    memset(line, 'r', sizeof line);
    long long blocks_max = 0;
    /* 80 MiB through a 64 MiB spool; a line is always left uncommitted. */
    for (int round = 0; round < 84; round++) {
        for (int i = 0; i < 1000; i++)
            CHECK(lg_spool_add(sp, line, sizeof line) == 0);
        CHECK(lg_spool_sync(sp) == 0);
        lp_buf_t buf = {0};
        off_t end = 0;
        size_t n = lg_spool_read(sp, 999, &buf, &end); /* leave the last line unread */
        CHECK(n == 999 || round > 0);
        lp_buf_free(&buf);
        lg_spool_commit(sp, end);
        struct stat st;
        CHECK(stat(s_path, &st) == 0);
        if (st.st_blocks > blocks_max)
            blocks_max = st.st_blocks;
    }
    /* The file's apparent size passed 80 MiB; the disk held the backlog plus a punch step. */
    CHECK(blocks_max * 512 <= 3 * LG_SPOOL_PUNCH);
    lg_spool_destroy(&sp);
    unlink(s_path);
}

int main(void)
{
    RUN(test_lines_round_trip);
    RUN(test_limit_refuses);
    RUN(test_steady_traffic_keeps_disk_bounded);
    return th_report();
}
