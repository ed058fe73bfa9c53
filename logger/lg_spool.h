/* lg_spool: the logger's durable queue of usage records, an append-only file of JSON lines.
 *
 * A record is acknowledged to its gateway only after it is in the spool and the spool is
 * synced (fdatasync), so a logger crash loses nothing the gateway let go of. The PostgreSQL
 * writer reads batches back from the spool (the page cache makes that cheap), and once every
 * record in the file is committed the file is truncated. A half-written last line after a
 * crash is cut off at start-up; a line that does not parse is counted and skipped. Under
 * steady traffic the file never drains completely, so the committed part is punched out
 * (fallocate) as it grows: the disk holds the backlog. That is bounded: past the limit the
 * spool refuses records, the logger stops acknowledging, and gateways keep (and later
 * resend) them. */
#ifndef LG_SPOOL_H
#define LG_SPOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "lp_buf.h"
#include "lp_util.h"

/* Most bytes the spool holds on disk unless told (--spool-max-mb): past it, records are
 * refused. */
#define LG_SPOOL_MAX ((off_t)1 << 30)
/* Committed bytes given back to the file system at a time (a power of two). */
#define LG_SPOOL_PUNCH ((off_t)16 << 20)

typedef struct lg_spool lg_spool_t;

/* Open (or create) the spool at path, holding max bytes at most, cutting a half-written
 * last line. NULL + err. */
lg_spool_t *lg_spool_open(const char *path, off_t max, char *err);
/* Close; NULL-safe, nulls the pointer. */
void lg_spool_destroy(lg_spool_t **self_p);
/* Queue one record (one line, no newline inside) for the next sync. -1 when the spool is
 * full (nothing queued). */
LP_MUSTCHECK int lg_spool_add(lg_spool_t *self, const char *line, size_t len);
/* Write and fdatasync what was added. -1 with errno on an I/O error (nothing is durable). */
LP_MUSTCHECK int lg_spool_sync(lg_spool_t *self);
/* Read up to max whole lines after the reader cursor into out (each with its newline);
 * returns the number of lines, and *end is the offset just past them. */
size_t lg_spool_read(lg_spool_t *self, size_t max, lp_buf_t *out, off_t *end);
/* The next line of what lg_spool_read put in lines, from *off on: its start and *len (the
 * newline left out), *off moved past it; NULL when none is left. Safe on any bytes: a line
 * may hold a NUL when the file was damaged. */
const char *lg_spool_line(const lp_buf_t *lines, size_t *off, size_t *len);
/* Lines up to offset `end` are committed: advance; when everything written is committed the
 * file is truncated to zero. */
void lg_spool_commit(lg_spool_t *self, off_t end);
/* The most bytes it holds (as opened). */
off_t lg_spool_max(const lg_spool_t *self);
/* Bytes written and not yet committed. */
off_t lg_spool_backlog(const lg_spool_t *self);
/* True when lines after the reader cursor wait to be read. */
bool lg_spool_pending(const lg_spool_t *self);
/* Rewind the reader to the committed point (after a failed batch, to read it again). */
void lg_spool_rewind(lg_spool_t *self);

#endif
