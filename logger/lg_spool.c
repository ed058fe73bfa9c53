#include "lg_spool.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

/* Bytes read per pread while looking for whole lines. */
#define LG_SPOOL_READ 65536

struct lg_spool {
    int fd;
    char *path;
    off_t max;        /* refuse records past this size */
    off_t size;       /* bytes durable in the file */
    off_t committed;  /* everything before this is in PostgreSQL */
    off_t punched;    /* the file's blocks before this are given back (a hole) */
    bool no_punch;    /* the file system cannot punch holes: the cap is on the file size */
    off_t reader;     /* next byte to read back */
    lp_buf_t pending; /* added, not yet written */
};

/* Cut a last line that a crash left without its newline. */
static int s_cut_partial(lg_spool_t *self, char *err)
{
    off_t end = self->size;
    char c;
    while (end > 0) {
        if (pread(self->fd, &c, 1, end - 1) != 1)
            return lp_err_set(err, "%s: cannot read: %s", self->path, strerror(errno));
        if (c == '\n')
            break;
        end--;
    }
    if (end != self->size && ftruncate(self->fd, end) < 0)
        return lp_err_set(err, "%s: cannot truncate: %s", self->path, strerror(errno));
    self->size = end;
    return 0;
}

lg_spool_t *lg_spool_open(const char *path, off_t max, char *err)
{
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        lp_err_set(err, "%s: cannot open the spool: %s", path, strerror(errno));
        return NULL;
    }
    /* One logger per spool: two writers would interleave their records. */
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        lp_err_set(err, "%s: the spool is in use by another logger (give each its own --spool)",
                   path);
        close(fd);
        return NULL;
    }
    struct stat st;
    if (fstat(fd, &st) < 0) {
        lp_err_set(err, "%s: %s", path, strerror(errno));
        close(fd);
        return NULL;
    }
    lg_spool_t *self = lp_calloc(1, sizeof *self);
    self->fd = fd;
    self->path = lp_strdup(path);
    self->max = max;
    self->size = st.st_size;
    if (s_cut_partial(self, err) < 0) {
        lg_spool_destroy(&self);
        return NULL;
    }
    return self;
}

void lg_spool_destroy(lg_spool_t **self_p)
{
    lg_spool_t *self = *self_p;
    if (!self)
        return;
    if (self->fd >= 0)
        close(self->fd);
    free(self->path);
    lp_buf_free(&self->pending);
    free(self);
    *self_p = NULL;
}

int lg_spool_add(lg_spool_t *self, const char *line, size_t len)
{
    /* What the disk holds: the backlog, or the whole file where no hole can be punched. */
    off_t held = self->size - (self->no_punch ? 0 : self->punched);
    if (held + (off_t)self->pending.len + (off_t)len + 1 > self->max)
        return -1;
    lp_buf_append(&self->pending, line, len);
    lp_buf_append(&self->pending, "\n", 1);
    return 0;
}

int lg_spool_sync(lg_spool_t *self)
{
    size_t off = 0;
    while (off < self->pending.len) {
        ssize_t n = pwrite(self->fd, self->pending.data + off, self->pending.len - off,
                           self->size + (off_t)off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int saved = errno;
            /* Nothing of this batch counts: cut back to the last durable size (if that
             * fails too, the next start cuts any partial line). */
            int rc = ftruncate(self->fd, self->size);
            LP_UNUSED(rc);
            lp_buf_reset(&self->pending);
            errno = saved;
            return -1;
        }
        off += (size_t)n;
    }
    if (self->pending.len && fdatasync(self->fd) < 0) {
        int saved = errno;
        lp_buf_reset(&self->pending);
        errno = saved;
        return -1;
    }
    self->size += (off_t)self->pending.len;
    lp_buf_reset(&self->pending);
    return 0;
}

size_t lg_spool_read(lg_spool_t *self, size_t max, lp_buf_t *out, off_t *end)
{
    size_t lines = 0;
    off_t pos = self->reader;
    char chunk[LG_SPOOL_READ];
    while (lines < max && pos < self->size) {
        size_t want = (size_t)LP_MIN((off_t)sizeof chunk, self->size - pos);
        ssize_t n = pread(self->fd, chunk, want, pos);
        if (n <= 0)
            break;
        /* Take whole lines only; a line longer than the chunk is read in pieces. */
        size_t used = 0;
        for (ssize_t i = 0; i < n && lines < max; i++) {
            if (chunk[i] == '\n') {
                lines++;
                used = (size_t)i + 1;
            }
        }
        if (used == 0) {
            /* No newline in this chunk: part of one long line. */
            lp_buf_append(out, chunk, (size_t)n);
            pos += n;
            continue;
        }
        lp_buf_append(out, chunk, used);
        pos += (off_t)used;
    }
    /* A trailing partial line (only possible for a line longer than a chunk cut by max)
     * is given back. */
    while (out->len > 0 && out->data[out->len - 1] != '\n') {
        out->len--;
        pos--;
    }
    if (out->data)
        out->data[out->len] = '\0';
    self->reader = pos;
    *end = pos;
    return lines;
}

off_t lg_spool_max(const lg_spool_t *self)
{
    return self->max;
}

const char *lg_spool_line(const lp_buf_t *lines, size_t *off, size_t *len)
{
    if (*off >= lines->len)
        return NULL;
    const char *start = lines->data + *off;
    const char *nl = memchr(start, '\n', lines->len - *off);
    size_t n = nl ? (size_t)(nl - start) : lines->len - *off;
    *len = n;
    *off += n + (nl ? 1 : 0);
    return start;
}

void lg_spool_commit(lg_spool_t *self, off_t end)
{
    if (end > self->committed)
        self->committed = end;
    if (self->committed >= self->size && self->pending.len == 0 && self->size > 0) {
        if (ftruncate(self->fd, 0) == 0)
            self->size = self->committed = self->reader = self->punched = 0;
        return;
    }
    /* Under steady traffic the file is never all committed at once: give the committed part's
     * blocks back as it grows, so the disk holds the backlog, not the history. */
    off_t upto = self->committed & ~(off_t)(LG_SPOOL_PUNCH - 1);
    if (self->no_punch || upto - self->punched < LG_SPOOL_PUNCH)
        return;
    if (fallocate(self->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, self->punched,
                  upto - self->punched) == 0)
        self->punched = upto;
    else if (errno == EOPNOTSUPP || errno == ENOSYS)
        self->no_punch = true; /* then it shrinks only when all is committed */
}

off_t lg_spool_backlog(const lg_spool_t *self)
{
    return self->size - self->committed;
}

bool lg_spool_pending(const lg_spool_t *self)
{
    return self->reader < self->size;
}

void lg_spool_rewind(lg_spool_t *self)
{
    self->reader = self->committed;
}
