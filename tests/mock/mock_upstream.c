/*
 * mock_upstream.c - mock LLM provider for integration tests and benchmarks.
 *
 * A real HTTP/1.1 server (libmicrohttpd, one thread per connection, keep-alive) that speaks the
 * OpenAI, Anthropic, Gemini, Voyage and text-embeddings-inference (TEI) wire formats with
 * deterministic content, records every request for later inspection and changes its behaviour
 * according to "modifier" path segments placed in front of the endpoint, e.g.
 * /status/429/retry-after/3/v1/chat/completions. The endpoint (the path suffix, after any
 * prefix) selects the wire format of the answer, of its errors and of its stream.
 *
 * Usage: mock_upstream [--port N] [--host ADDR]   (port 0, the default, picks an ephemeral port)
 * Prints "listening on <port>" once ready; exits 0 on SIGTERM/SIGINT.
 *
 * Reply text: "mock: " + the last user text, cut to 200 bytes on a UTF-8 boundary. Token counts:
 * prompt = ceil(bytes of all prompt text / 4), at least 1; completion = words of the reply text
 * (of the whole streamed text), or 1 for a tool call (words of {"arg":"value"}). Embeddings: 8
 * floats per input (multiples of 1/1024 from FNV-1a of the input text, the same values on every
 * route for the same text; a requested dimension n gives the first n of the same series).
 *
 * Endpoints (POST unless noted; any prefix before them; .../v1/messages/count_tokens answers
 * {"input_tokens": 1000 + bytes of the request body}):
 *   .../chat/completions   OpenAI chat: echo of the last user message; with tools (and
 *                          tool_choice not "none") a tool call {"arg":"value"} to the forced or
 *                          first function; "stream": true gives chat.completion.chunk SSE
 *                          ("data: ...\n\n", [DONE]), usage chunk with include_usage.
 *   .../completions        OpenAI legacy completions: "mock: " + prompt, optionally streamed.
 *   .../embeddings         OpenAI embeddings: input string | [string] | token array(s);
 *                          encoding_format "base64" gives base64 of little-endian float32.
 *   GET .../models         OpenAI model list (one "mock-model").
 *   .../v1/messages        Anthropic Messages: max_tokens required (else 400); last user text
 *                          from the string or text blocks of the last user message ("mock: tool
 *                          result received" when it has only tool_result blocks); system and
 *                          tool_result text count as prompt; with tools and tool_choice not
 *                          {"type":"none"} a tool_use block {"arg":"value"} to the forced
 *                          ({"type":"tool","name"}) or first tool, stop_reason "tool_use".
 *                          "stream": true gives the Anthropic event sequence ("event: <type>\n
 *                          data: <json>\n\n"): message_start, ping, content_block_start,
 *                          <chunks> text_delta (or two input_json_delta halves of the tool
 *                          input), content_block_stop, message_delta, message_stop.
 *   .../models/<model>:generateContent        Gemini: last user text from the text parts of
 *                          the last "user" (or role-less, or "function") content ("mock:
 *                          function result received" when it has only functionResponse parts);
 *                          with functionDeclarations and toolConfig mode not NONE a functionCall
 *                          part {"arg":"value"} to the first declared (or, with mode ANY, first
 *                          allowed) function. modelVersion is the <model> of the path.
 *   .../models/<model>:streamGenerateContent  The same as SSE ("data: <json>\r\n\r\n", no
 *                          [DONE]), with or without ?alt=sse: <chunks> events of one text part
 *                          each, every one with cumulative usageMetadata, the last one with
 *                          finishReason "STOP"; a function call is one event.
 *   .../models/<model>:batchEmbedContents     Gemini: {requests:[{content:{parts:[{text}]},
 *                          outputDimensionality?}]} -> {"embeddings":[{"values":[...]}]}.
 *   .../models/<model>:embedContent           Gemini: {content, outputDimensionality?} ->
 *                          {"embedding":{"values":[...]}}.
 *   .../embed              TEI: {inputs: string | [string]} -> [[...], ...] (bare arrays).
 *   A ':' of the Gemini routes may also be sent as %3A. Any other route (or method) answers 404,
 *   OpenAI-shaped for an unknown route. Requested embedding sizes (Gemini outputDimensionality,
 *   Voyage output_dimension) must be 1..65536, else 400.
 *
 * Errors (from /status, invalid JSON, a missing required field, a wrong method or a body over
 * 64 MiB, answered 413) have the shape of the endpoint's wire format, message "mock error <n>":
 *   OpenAI     {"error":{"message","type","param":null,"code":"<n>"}}
 *   Anthropic  {"type":"error","error":{"type","message"}}, type invalid_request_error 400,
 *              authentication_error 401, permission_error 403, not_found_error 404,
 *              request_too_large 413, rate_limit_error 429, overloaded_error 529, else api_error
 *   Gemini     {"error":{"code":<n>,"message","status"}}, status INVALID_ARGUMENT 400,
 *              UNAUTHENTICATED 401, PERMISSION_DENIED 403, NOT_FOUND 404, RESOURCE_EXHAUSTED
 *              429, UNAVAILABLE 503, else INTERNAL
 *   Voyage     {"detail":"mock error <n>"}
 *   TEI        {"error":"mock error <n>","error_type":"Validation" for 4xx, else "Backend"}
 *
 * Control routes (never recorded):
 *   GET /_mock/requests, DELETE /_mock/requests, GET /_mock/count, GET /_mock/health,
 *   GET /_mock/stats.
 *
 * Modifiers (any order, before the endpoint; unknown segments are ignored):
 *   /status/<400..599>  error answer in the endpoint's wire format (codes below 400 are ignored)
 *   /retry-after/<n>    value of retry-after for 429 and 503, and for 529 on .../v1/messages
 *                       (default 1)
 *   /delay/<ms>         sleep before sending the headers
 *   /chunks/<n>         number of content chunks of a stream (default 5, 1..1000000)
 *   /chunk-delay/<ms>   sleep between stream events
 *   /hang               never answer (see below)
 *   /garbage            200 application/json "this is not json {"
 *   /truncate           stream: stop after half the content chunks (OpenAI: no finish chunk, no
 *                       [DONE]; Anthropic: half the deltas, no content_block_stop, message_delta
 *                       or message_stop; Gemini: half the events, none with finishReason, so
 *                       a function-call stream sends no event at all);
 *                       non-stream: 200 with the JSON body cut in half
 *   /bad-sse            stream: one valid event, then an event with data "{not json" (Anthropic:
 *                       "event: content_block_delta"; Gemini: CRLF), then the normal rest
 *   /voyage             makes .../embeddings answer Voyage-shaped: {"object":"list","data":
 *                       [{"object":"embedding","embedding","index"}],"model","usage":
 *                       {"total_tokens"}}; output_dimension gives that many floats,
 *                       encoding_format "base64" base64 strings; Voyage error bodies
 *
 * /hang: the request is recorded, then the handler sleeps in the connection thread, in slices of
 * at most 100 ms, without ever sending a status line or headers. Every slice polls the client
 * socket for POLLRDHUP/POLLHUP/POLLERR, so the wait ends as soon as the client closes its side
 * (or the server is shutting down), and in any case after 120 s. The handler then returns MHD_NO,
 * which makes libmicrohttpd close the connection without a response (counted in
 * connections_closed). /delay and /chunk-delay use the same interruptible wait: a client that goes
 * away during the delay gets its connection closed at once.
 */
#include <ctype.h>
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <microhttpd.h>

#define MOCK_MAX_BODY      ((size_t)64 * 1024 * 1024)
#define MOCK_MAX_RECORDS   10000
#define MOCK_REPLY_MAX     200
#define MOCK_HANG_MS       120000L
#define MOCK_TIMEOUT_S     120u
#define MOCK_MAX_CHUNKS    1000000
#define MOCK_MAX_DELAY_MS  600000L
#define MOCK_WAIT_SLICE_MS 100L
#define MOCK_EMBED_DIM     8
#define MOCK_MAX_EMBED_DIM 65536
#define MOCK_TOOL_ARGS     "{\"arg\":\"value\"}"
#define MOCK_GARBAGE       "this is not json {"

/* Shared server state, passed as closure to every libmicrohttpd callback. */
struct mock_server {
    pthread_mutex_t lock; /* protects records */
    json_t *records;      /* array of recorded requests, oldest first */
    atomic_bool stopping;
    atomic_ulong next_seq;
    atomic_long conns_opened;
    atomic_long conns_closed;
    atomic_long active_requests;
};

/* Growable byte buffer, always NUL-terminated once non-empty. */
struct sbuf {
    char *data;
    size_t len;
    size_t cap;
};

/* Wire format of an answer: body shapes, error bodies and SSE framing. */
enum wire { WIRE_OPENAI, WIRE_ANTHROPIC, WIRE_GEMINI, WIRE_VOYAGE, WIRE_TEI };

/* Per-request state (libmicrohttpd's con_cls). */
struct req_ctx {
    struct mock_server *srv;
    char *uri; /* raw request target, including the query string */
    bool started;
    bool is_control;
    bool counted;
    bool too_large;
    enum wire wire; /* format of the answer and of its errors (OpenAI for control routes) */
    unsigned long seq;
    struct sbuf body;
};

/* Behaviour modifiers parsed from the path. */
struct mods {
    int status;
    long retry_after;
    long delay_ms;
    long chunks;
    long chunk_delay_ms;
    bool hang;
    bool garbage;
    bool truncate;
    bool bad_sse;
    bool voyage;
    const char *model; /* Gemini: the <model> of .../models/<model>:<method>, not terminated */
    size_t model_len;
};

enum endpoint {
    EP_NONE,
    EP_CHAT,
    EP_COMPLETIONS,
    EP_EMBEDDINGS,
    EP_MODELS,
    EP_MESSAGES,
    EP_COUNT_TOKENS,
    EP_GEMINI_GENERATE,
    EP_GEMINI_STREAM,
    EP_GEMINI_BATCH_EMBED,
    EP_GEMINI_EMBED,
    EP_TEI_EMBED
};

enum ev_kind {
    EV_ROLE,
    EV_BAD,
    EV_CONTENT,
    EV_TOOL_HEAD,
    EV_TOOL_ARGS,
    EV_FINISH,
    EV_USAGE,
    EV_DONE,
    EV_MSG_START,   /* Anthropic message_start */
    EV_PING,        /* Anthropic ping */
    EV_BLOCK_START, /* Anthropic content_block_start */
    EV_BLOCK_STOP,  /* Anthropic content_block_stop */
    EV_MSG_DELTA,   /* Anthropic message_delta */
    EV_MSG_STOP     /* Anthropic message_stop */
};

struct stream_event {
    enum ev_kind kind;
    size_t index;
};

/* State of one streamed answer, owned by the MHD response (freed by s_stream_free). */
struct stream_state {
    struct mock_server *srv;
    int fd;
    enum wire wire; /* WIRE_OPENAI, WIRE_ANTHROPIC or WIRE_GEMINI */
    bool chat;      /* OpenAI: chat.completion.chunk, else text_completion */
    bool tool;
    bool include_usage;
    long chunk_delay_ms;
    json_int_t created;
    json_int_t prompt_tokens;
    json_int_t completion_tokens;
    char id[64];
    char call_id[64];
    char *model;
    char *tool_name;
    struct sbuf text; /* streamed content */
    size_t *cuts;     /* pieces + 1 byte offsets into text */
    size_t pieces;
    struct stream_event *events;
    size_t n_events;
    size_t next_event;
    struct sbuf pending; /* current event text not yet handed to MHD */
    size_t pending_off;
};

/* Appends bytes, growing geometrically; keeps the buffer NUL-terminated for convenience. */
static bool s_sbuf_append(struct sbuf *sb, const void *data, size_t len)
{
    if (len > SIZE_MAX - sb->len - 1)
        return false;
    size_t need = sb->len + len + 1;
    if (need > sb->cap) {
        size_t cap = sb->cap ? sb->cap : 256;
        while (cap < need) {
            if (cap > SIZE_MAX / 2) {
                cap = need;
                break;
            }
            cap *= 2;
        }
        char *p = realloc(sb->data, cap);
        if (!p)
            return false;
        sb->data = p;
        sb->cap = cap;
    }
    if (len)
        memcpy(sb->data + sb->len, data, len);
    sb->len += len;
    sb->data[sb->len] = '\0';
    return true;
}

static bool s_sbuf_append_str(struct sbuf *sb, const char *s)
{
    return s_sbuf_append(sb, s, strlen(s));
}

static void s_sbuf_free(struct sbuf *sb)
{
    free(sb->data);
    sb->data = NULL;
    sb->len = 0;
    sb->cap = 0;
}

static char *s_strdup(const char *s)
{
    size_t len = strlen(s);
    char *p = malloc(len + 1);
    if (p)
        memcpy(p, s, len + 1);
    return p;
}

/*
 * Request data need not be UTF-8 but jansson strings must be: fall back to a copy where every
 * non-ASCII byte is replaced by '?' so that recording never fails on odd input.
 */
static json_t *s_json_string_lossy(const char *data, size_t len)
{
    json_t *s = json_stringn(data ? data : "", data ? len : 0);
    if (s || !data)
        return s;
    char *copy = malloc(len + 1);
    if (!copy)
        return NULL;
    for (size_t i = 0; i < len; i++)
        copy[i] = ((unsigned char)data[i] < 0x80) ? data[i] : '?';
    copy[len] = '\0';
    s = json_stringn(copy, len);
    free(copy);
    return s;
}

/* Largest length <= max that does not split a UTF-8 sequence, so truncated text stays valid. */
static size_t s_utf8_cut(const char *s, size_t len, size_t max)
{
    if (len <= max)
        return len;
    size_t n = max;
    while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
        n--;
    return n;
}

static size_t s_utf8_chars(const char *s, size_t len)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++)
        if (((unsigned char)s[i] & 0xC0) != 0x80)
            n++;
    return n;
}

static json_int_t s_count_words(const char *s, size_t len)
{
    json_int_t words = 0;
    bool in_word = false;
    for (size_t i = 0; i < len; i++) {
        bool space = isspace((unsigned char)s[i]) != 0;
        if (!space && !in_word)
            words++;
        in_word = !space;
    }
    return words;
}

static json_int_t s_tokens_from_bytes(size_t bytes)
{
    return (json_int_t)((bytes + 3) / 4);
}

/* Parses a whole path segment as a decimal number within [min, max]; rejects anything else. */
static bool s_parse_num(const char *seg, size_t len, long min, long max, long *out)
{
    char buf[24];
    if (len == 0 || len >= sizeof(buf))
        return false;
    memcpy(buf, seg, len);
    buf[len] = '\0';
    if (!isdigit((unsigned char)buf[0]))
        return false;
    char *end = NULL;
    errno = 0;
    long v = strtol(buf, &end, 10);
    if (errno != 0 || !end || *end != '\0' || v < min || v > max)
        return false;
    *out = v;
    return true;
}

/* Returns the next non-empty '/'-separated segment of [*p, end) and advances *p past it. */
static bool s_next_segment(const char **p, const char *end, const char **seg, size_t *seg_len)
{
    const char *s = *p;
    while (s < end && *s == '/')
        s++;
    if (s >= end) {
        *p = end;
        return false;
    }
    const char *e = memchr(s, '/', (size_t)(end - s));
    if (!e)
        e = end;
    *seg = s;
    *seg_len = (size_t)(e - s);
    *p = e;
    return true;
}

static bool s_seg_is(const char *seg, size_t len, const char *word)
{
    return strlen(word) == len && memcmp(seg, word, len) == 0;
}

/*
 * Gemini routes: the last segment is "<model>:<method>" (the ':' possibly sent as %3A). On a match
 * the model span is stored in m and *prefix_len is where the last segment starts.
 */
static enum endpoint s_gemini_endpoint(const char *path, size_t len, struct mods *m,
                                       size_t *prefix_len)
{
    static const struct {
        const char *method;
        enum endpoint ep;
    } k_methods[] = {
        {"generateContent", EP_GEMINI_GENERATE},
        {"streamGenerateContent", EP_GEMINI_STREAM},
        {"batchEmbedContents", EP_GEMINI_BATCH_EMBED},
        {"embedContent", EP_GEMINI_EMBED},
    };

    size_t start = len;
    while (start > 0 && path[start - 1] != '/')
        start--;
    const char *seg = path + start;
    size_t seg_len = len - start;
    for (size_t i = 0; i < seg_len; i++) {
        size_t sep = 0;
        if (seg[i] == ':')
            sep = 1;
        else if (seg_len - i >= 3 && seg[i] == '%' && seg[i + 1] == '3' &&
                 (seg[i + 2] == 'A' || seg[i + 2] == 'a'))
            sep = 3;
        if (sep == 0)
            continue;
        if (i == 0)
            return EP_NONE;
        const char *method = seg + i + sep;
        size_t method_len = seg_len - i - sep;
        for (size_t k = 0; k < sizeof(k_methods) / sizeof(k_methods[0]); k++) {
            if (s_seg_is(method, method_len, k_methods[k].method)) {
                m->model = seg;
                m->model_len = i;
                *prefix_len = start;
                return k_methods[k].ep;
            }
        }
        return EP_NONE;
    }
    return EP_NONE;
}

/*
 * Splits the path into modifiers and endpoint. The endpoint is matched on the suffix so that any
 * api_base prefix works; every segment before it is either a known modifier (with its value) or
 * ignored.
 */
static enum endpoint s_parse_path(const char *path, size_t len, struct mods *m)
{
    static const struct {
        const char *suffix;
        enum endpoint ep;
    } k_endpoints[] = {
        {"/chat/completions", EP_CHAT},
        {"/completions", EP_COMPLETIONS},
        {"/embeddings", EP_EMBEDDINGS},
        {"/models", EP_MODELS},
        {"/v1/messages", EP_MESSAGES},
        {"/embed", EP_TEI_EMBED},
        {"/v1/messages/count_tokens", EP_COUNT_TOKENS},
    };

    memset(m, 0, sizeof(*m));
    m->retry_after = 1;
    m->chunks = 5;

    if (len > 1 && path[len - 1] == '/')
        len--;
    size_t prefix_len = len;
    enum endpoint ep = s_gemini_endpoint(path, len, m, &prefix_len);
    for (size_t i = 0; ep == EP_NONE && i < sizeof(k_endpoints) / sizeof(k_endpoints[0]); i++) {
        size_t sl = strlen(k_endpoints[i].suffix);
        if (len >= sl && memcmp(path + len - sl, k_endpoints[i].suffix, sl) == 0) {
            ep = k_endpoints[i].ep;
            prefix_len = len - sl;
            break;
        }
    }

    const char *p = path;
    const char *end = path + prefix_len;
    const char *cur = NULL;
    size_t cur_len = 0;
    bool have = s_next_segment(&p, end, &cur, &cur_len);
    while (have) {
        const char *nxt = NULL;
        size_t nxt_len = 0;
        bool have_next = s_next_segment(&p, end, &nxt, &nxt_len);
        bool used_next = false;
        long v = 0;

        if (s_seg_is(cur, cur_len, "hang")) {
            m->hang = true;
        } else if (s_seg_is(cur, cur_len, "garbage")) {
            m->garbage = true;
        } else if (s_seg_is(cur, cur_len, "truncate")) {
            m->truncate = true;
        } else if (s_seg_is(cur, cur_len, "bad-sse")) {
            m->bad_sse = true;
        } else if (s_seg_is(cur, cur_len, "voyage")) {
            m->voyage = true;
        } else if (have_next && s_seg_is(cur, cur_len, "status") &&
                   s_parse_num(nxt, nxt_len, 100, 599, &v)) {
            m->status = (int)v;
            used_next = true;
        } else if (have_next && s_seg_is(cur, cur_len, "retry-after") &&
                   s_parse_num(nxt, nxt_len, 0, 86400, &v)) {
            m->retry_after = v;
            used_next = true;
        } else if (have_next && s_seg_is(cur, cur_len, "delay") &&
                   s_parse_num(nxt, nxt_len, 0, MOCK_MAX_DELAY_MS, &v)) {
            m->delay_ms = v;
            used_next = true;
        } else if (have_next && s_seg_is(cur, cur_len, "chunks") &&
                   s_parse_num(nxt, nxt_len, 1, MOCK_MAX_CHUNKS, &v)) {
            m->chunks = v;
            used_next = true;
        } else if (have_next && s_seg_is(cur, cur_len, "chunk-delay") &&
                   s_parse_num(nxt, nxt_len, 0, MOCK_MAX_DELAY_MS, &v)) {
            m->chunk_delay_ms = v;
            used_next = true;
        }

        if (used_next) {
            have = s_next_segment(&p, end, &cur, &cur_len);
        } else {
            cur = nxt;
            cur_len = nxt_len;
            have = have_next;
        }
    }
    return ep;
}

static const char *s_error_type(unsigned int status)
{
    switch (status) {
    case 400:
        return "invalid_request_error";
    case 401:
        return "authentication_error";
    case 403:
        return "permission_error";
    case 404:
        return "not_found_error";
    case 429:
        return "rate_limit_error";
    default:
        return "api_error";
    }
}

static const char *s_anthropic_error_type(unsigned int status)
{
    switch (status) {
    case 413:
        return "request_too_large";
    case 529:
        return "overloaded_error";
    default:
        return s_error_type(status);
    }
}

static const char *s_gemini_error_status(unsigned int status)
{
    switch (status) {
    case 400:
        return "INVALID_ARGUMENT";
    case 401:
        return "UNAUTHENTICATED";
    case 403:
        return "PERMISSION_DENIED";
    case 404:
        return "NOT_FOUND";
    case 429:
        return "RESOURCE_EXHAUSTED";
    case 503:
        return "UNAVAILABLE";
    default:
        return "INTERNAL";
    }
}

/* Error body in the given wire format, message "mock error <status>". */
static json_t *s_error_body(enum wire wire, unsigned int status)
{
    char msg[48];
    char code[16];
    if (snprintf(msg, sizeof(msg), "mock error %u", status) <= 0 ||
        snprintf(code, sizeof(code), "%u", status) <= 0)
        return NULL;
    switch (wire) {
    case WIRE_ANTHROPIC:
        return json_pack("{s:s,s:{s:s,s:s}}", "type", "error", "error", "type",
                         s_anthropic_error_type(status), "message", msg);
    case WIRE_GEMINI:
        return json_pack("{s:{s:i,s:s,s:s}}", "error", "code", (int)status, "message", msg,
                         "status", s_gemini_error_status(status));
    case WIRE_VOYAGE:
        return json_pack("{s:s}", "detail", msg);
    case WIRE_TEI:
        return json_pack("{s:s,s:s}", "error", msg, "error_type",
                         status >= 400 && status < 500 ? "Validation" : "Backend");
    default:
        return json_pack("{s:{s:s,s:s,s:n,s:s}}", "error", "message", msg, "type",
                         s_error_type(status), "param", "code", code);
    }
}

static long s_elapsed_ms(const struct timespec *start)
{
    struct timespec now;
    if (clock_gettime(CLOCK_MONOTONIC, &now) != 0)
        return 0;
    return (long)(now.tv_sec - start->tv_sec) * 1000L + (now.tv_nsec - start->tv_nsec) / 1000000L;
}

/*
 * Sleeps up to ms milliseconds in slices of at most 100 ms. Each slice polls the client socket
 * so that a client that closed the connection (or a server shutdown) ends the wait early.
 * Returns true if the full time elapsed, false if the wait was cut short.
 */
static bool s_wait_ms(struct mock_server *srv, int fd, long ms)
{
    struct timespec start;
    if (clock_gettime(CLOCK_MONOTONIC, &start) != 0)
        return false;
    for (;;) {
        if (atomic_load(&srv->stopping))
            return false;
        long left = ms - s_elapsed_ms(&start);
        if (left <= 0)
            return true;
        long step = left < MOCK_WAIT_SLICE_MS ? left : MOCK_WAIT_SLICE_MS;
        bool slept = false;
        if (fd >= 0) {
            struct pollfd pfd = {.fd = fd, .events = POLLRDHUP, .revents = 0};
            int rc = poll(&pfd, 1, (int)step);
            if (rc > 0 && (pfd.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)))
                return false;
            slept = rc >= 0 || errno == EINTR;
        }
        if (!slept) {
            struct timespec ts = {.tv_sec = step / 1000, .tv_nsec = (step % 1000) * 1000000L};
            if (nanosleep(&ts, NULL) != 0 && errno != EINTR)
                return false;
        }
    }
}

static int s_connection_fd(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    return ci ? ci->connect_fd : -1;
}

/* Takes ownership of a malloc'd buffer; frees it if the response cannot be created. */
static struct MHD_Response *s_response_from_owned(char *buf, size_t len)
{
    if (!buf)
        return NULL;
    struct MHD_Response *resp = MHD_create_response_from_buffer(len, buf, MHD_RESPMEM_MUST_FREE);
    if (!resp)
        free(buf);
    return resp;
}

/* Serialises (and releases) json; with truncate only the first half of the text is sent. */
static struct MHD_Response *s_response_from_json(json_t *json, bool truncate)
{
    if (!json)
        return NULL;
    char *text = json_dumps(json, JSON_COMPACT);
    json_decref(json);
    if (!text)
        return NULL;
    size_t len = strlen(text);
    if (truncate)
        len /= 2;
    return s_response_from_owned(text, len);
}

/*
 * Adds the headers every answer carries and queues the response. retry_after < 0 means no
 * retry-after header. The response reference is always released.
 */
static enum MHD_Result s_send(struct req_ctx *ctx, struct MHD_Connection *conn, unsigned int status,
                              struct MHD_Response *resp, const char *ctype, long retry_after)
{
    if (!resp)
        return MHD_NO;
    char rid[48];
    char ra[24];
    bool ok = snprintf(rid, sizeof(rid), "mock-%lu", ctx->seq) > 0 &&
              MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype) == MHD_YES &&
              MHD_add_response_header(resp, "x-request-id", rid) == MHD_YES;
    if (ok && !ctx->is_control && status == MHD_HTTP_OK)
        ok = MHD_add_response_header(resp, "openai-processing-ms", "1") == MHD_YES;
    if (ok && strcmp(ctype, "text/event-stream") == 0)
        ok = MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache") == MHD_YES;
    if (ok && retry_after >= 0) {
        ok = snprintf(ra, sizeof(ra), "%ld", retry_after) > 0 &&
             MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, ra) == MHD_YES;
    }
    enum MHD_Result rc = ok ? MHD_queue_response(conn, status, resp) : MHD_NO;
    MHD_destroy_response(resp);
    return rc;
}

static enum MHD_Result s_send_json(struct req_ctx *ctx, struct MHD_Connection *conn,
                                   unsigned int status, json_t *json, bool truncate)
{
    return s_send(ctx, conn, status, s_response_from_json(json, truncate), "application/json", -1);
}

/*
 * Error in the request's wire format (OpenAI for control routes); 429 and 503 (and Anthropic's
 * 529 overloaded) also carry retry-after.
 */
static enum MHD_Result s_send_error(struct req_ctx *ctx, struct MHD_Connection *conn,
                                    unsigned int status, long retry_after)
{
    json_t *body = s_error_body(ctx->wire, status);
    bool with_retry = status == MHD_HTTP_TOO_MANY_REQUESTS ||
                      status == MHD_HTTP_SERVICE_UNAVAILABLE ||
                      (ctx->wire == WIRE_ANTHROPIC && status == 529);
    return s_send(ctx, conn, status, s_response_from_json(body, false), "application/json",
                  with_retry ? retry_after : -1);
}

/* Header iterator: stores lower-cased names; repeated headers are joined with ", ". */
static enum MHD_Result s_collect_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                        const char *value)
{
    json_t *headers = cls;
    (void)kind;
    if (!key)
        return MHD_YES;
    char *name = s_strdup(key);
    if (!name)
        return MHD_YES;
    for (char *c = name; *c; c++)
        *c = (char)tolower((unsigned char)*c);
    const char *val = value ? value : "";
    json_t *prev = json_object_get(headers, name);
    json_t *item = NULL;
    if (json_is_string(prev)) {
        struct sbuf joined = {0};
        if (s_sbuf_append(&joined, json_string_value(prev), json_string_length(prev)) &&
            s_sbuf_append_str(&joined, ", ") && s_sbuf_append_str(&joined, val))
            item = s_json_string_lossy(joined.data, joined.len);
        s_sbuf_free(&joined);
    } else {
        item = s_json_string_lossy(val, strlen(val));
    }
    /* set_new consumes item even on failure: a name jansson rejects (not UTF-8) is skipped. */
    if (item && json_object_set_new(headers, name, item) != 0)
        fprintf(stderr, "mock_upstream: header '%s' not recorded\n", name);
    free(name);
    return MHD_YES;
}

/* Appends the request to the bounded in-memory log that /_mock/requests exposes. */
static void s_record_request(struct req_ctx *ctx, struct MHD_Connection *conn, const char *method)
{
    struct mock_server *srv = ctx->srv;
    json_t *headers = json_object();
    if (headers &&
        MHD_get_connection_values(conn, MHD_HEADER_KIND, s_collect_header, headers) < 0) {
        json_decref(headers);
        headers = NULL;
    }
    const char *body = ctx->body.data ? ctx->body.data : "";
    json_error_t err;
    json_t *parsed = json_loadb(body, ctx->body.len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &err);
    if (!parsed)
        parsed = json_null();
    json_t *entry = json_pack("{s:I,s:o,s:o,s:o,s:o,s:o}", "seq", (json_int_t)ctx->seq, "method",
                              s_json_string_lossy(method, strlen(method)), "path",
                              s_json_string_lossy(ctx->uri, strlen(ctx->uri)), "headers", headers,
                              "body", s_json_string_lossy(body, ctx->body.len), "json", parsed);
    if (!entry) {
        fprintf(stderr, "mock_upstream: cannot record request %lu\n", ctx->seq);
        return;
    }
    if (pthread_mutex_lock(&srv->lock) != 0) {
        json_decref(entry);
        return;
    }
    if (json_array_size(srv->records) >= MOCK_MAX_RECORDS)
        (void)json_array_remove(srv->records, 0);
    if (json_array_append_new(srv->records, entry) != 0)
        fprintf(stderr, "mock_upstream: cannot record request %lu\n", ctx->seq);
    (void)pthread_mutex_unlock(&srv->lock);
}

static void s_stream_free(void *cls)
{
    struct stream_state *st = cls;
    if (!st)
        return;
    free(st->model);
    free(st->tool_name);
    s_sbuf_free(&st->text);
    free(st->cuts);
    free(st->events);
    s_sbuf_free(&st->pending);
    free(st);
}

/*
 * Builds the streamed text and cuts it into exactly `chunks` non-empty pieces on UTF-8 boundaries.
 * A reply with fewer characters than chunks is repeated until every piece can hold one character
 * (tests count content chunks).
 */
static bool s_stream_split(struct stream_state *st, const char *reply, size_t reply_len,
                           size_t chunks)
{
    size_t chars = s_utf8_chars(reply, reply_len);
    size_t reps = (chars > 0 && chars < chunks) ? (chunks + chars - 1) / chars : 1;
    for (size_t r = 0; r < reps; r++)
        if (!s_sbuf_append(&st->text, reply, reply_len))
            return false;
    if (!st->text.data && !s_sbuf_append(&st->text, "", 0))
        return false;

    size_t total = chars * reps;
    size_t *starts = calloc(total + 1, sizeof(*starts));
    st->cuts = calloc(chunks + 1, sizeof(*st->cuts));
    if (!starts || !st->cuts) {
        free(starts);
        return false;
    }
    size_t n = 0;
    for (size_t i = 0; i < st->text.len && n < total; i++)
        if (((unsigned char)st->text.data[i] & 0xC0) != 0x80)
            starts[n++] = i;
    starts[total] = st->text.len;
    for (size_t i = 0; i <= chunks; i++)
        st->cuts[i] = starts[(i * total) / chunks];
    st->pieces = chunks;
    free(starts);
    return true;
}

/*
 * Lays out the sequence of SSE events once, so the reader only walks the list; /truncate and
 * /bad-sse alter the list.
 *   OpenAI:    role (chat only), content (or tool-call head + 2 argument deltas), finish,
 *              optional usage, [DONE].
 *   Anthropic: message_start, ping, content_block_start, text deltas (or 2 input_json_delta),
 *              content_block_stop, message_delta, message_stop.
 *   Gemini:    content events (or one functionCall event); the last carries finishReason.
 */
static bool s_stream_plan(struct stream_state *st, bool truncate, bool bad_sse)
{
    size_t content;
    if (st->wire == WIRE_ANTHROPIC)
        content = st->tool ? 2 : st->pieces;
    else if (st->wire == WIRE_GEMINI)
        content = st->tool ? 1 : st->pieces;
    else
        content = st->tool ? 3 : st->pieces;
    if (truncate)
        content /= 2;
    st->events = calloc(content + 8, sizeof(*st->events));
    if (!st->events)
        return false;
    size_t n = 0;
    if (st->wire == WIRE_ANTHROPIC) {
        st->events[n++] = (struct stream_event){EV_MSG_START, 0};
        st->events[n++] = (struct stream_event){EV_PING, 0};
        st->events[n++] = (struct stream_event){EV_BLOCK_START, 0};
        for (size_t i = 0; i < content; i++)
            st->events[n++] = (struct stream_event){st->tool ? EV_TOOL_ARGS : EV_CONTENT, i};
        if (!truncate) {
            st->events[n++] = (struct stream_event){EV_BLOCK_STOP, 0};
            st->events[n++] = (struct stream_event){EV_MSG_DELTA, 0};
            st->events[n++] = (struct stream_event){EV_MSG_STOP, 0};
        }
    } else if (st->wire == WIRE_GEMINI) {
        /* Truncation drops the last event, the only one with finishReason. */
        for (size_t i = 0; i < content; i++)
            st->events[n++] = (struct stream_event){st->tool ? EV_TOOL_HEAD : EV_CONTENT, i};
    } else {
        if (st->chat)
            st->events[n++] = (struct stream_event){EV_ROLE, 0};
        for (size_t i = 0; i < content; i++) {
            if (!st->tool)
                st->events[n++] = (struct stream_event){EV_CONTENT, i};
            else if (i == 0)
                st->events[n++] = (struct stream_event){EV_TOOL_HEAD, 0};
            else
                st->events[n++] = (struct stream_event){EV_TOOL_ARGS, i - 1};
        }
        if (!truncate) {
            st->events[n++] = (struct stream_event){EV_FINISH, 0};
            if (st->include_usage)
                st->events[n++] = (struct stream_event){EV_USAGE, 0};
            st->events[n++] = (struct stream_event){EV_DONE, 0};
        }
    }
    if (bad_sse) {
        size_t at = n > 0 ? 1 : 0;
        memmove(&st->events[at + 1], &st->events[at], (n - at) * sizeof(*st->events));
        st->events[at] = (struct stream_event){EV_BAD, 0};
        n++;
    }
    st->n_events = n;
    return true;
}

static json_t *s_usage_json(json_int_t prompt, json_int_t completion)
{
    return json_pack("{s:I,s:I,s:I}", "prompt_tokens", prompt, "completion_tokens", completion,
                     "total_tokens", prompt + completion);
}

/* JSON payload of one stream event (chat.completion.chunk or legacy text_completion). */
static json_t *s_stream_event_json(const struct stream_state *st, const struct stream_event *ev)
{
    const char *object = st->chat ? "chat.completion.chunk" : "text_completion";
    if (ev->kind == EV_USAGE) {
        return json_pack("{s:s,s:s,s:I,s:s,s:s,s:[],s:o}", "id", st->id, "object", object,
                         "created", st->created, "model", st->model, "system_fingerprint",
                         "fp_mock", "choices", "usage",
                         s_usage_json(st->prompt_tokens, st->completion_tokens));
    }
    const char *piece = "";
    size_t piece_len = 0;
    const char *finish = NULL;
    if (ev->kind == EV_CONTENT && ev->index < st->pieces) {
        piece = st->text.data + st->cuts[ev->index];
        piece_len = st->cuts[ev->index + 1] - st->cuts[ev->index];
    } else if (ev->kind == EV_FINISH) {
        finish = st->tool ? "tool_calls" : "stop";
    }

    if (!st->chat) {
        return json_pack("{s:s,s:s,s:I,s:s,s:[{s:s%,s:i,s:n,s:s?}]}", "id", st->id, "object",
                         object, "created", st->created, "model", st->model, "choices", "text",
                         piece, piece_len, "index", 0, "logprobs", "finish_reason", finish);
    }

    json_t *delta = NULL;
    size_t args_len = strlen(MOCK_TOOL_ARGS);
    size_t half = args_len / 2;
    switch (ev->kind) {
    case EV_ROLE:
        delta = st->tool ? json_pack("{s:s,s:n}", "role", "assistant", "content")
                         : json_pack("{s:s,s:s}", "role", "assistant", "content", "");
        break;
    case EV_CONTENT:
        delta = json_pack("{s:s%}", "content", piece, piece_len);
        break;
    case EV_TOOL_HEAD:
        delta = json_pack("{s:[{s:i,s:s,s:s,s:{s:s,s:s}}]}", "tool_calls", "index", 0, "id",
                          st->call_id, "type", "function", "function", "name", st->tool_name,
                          "arguments", "");
        break;
    case EV_TOOL_ARGS:
        delta = json_pack("{s:[{s:i,s:{s:s%}}]}", "tool_calls", "index", 0, "function", "arguments",
                          &MOCK_TOOL_ARGS[ev->index == 0 ? 0 : half],
                          ev->index == 0 ? half : args_len - half);
        break;
    case EV_FINISH:
        delta = json_object();
        break;
    default:
        return NULL;
    }
    return json_pack("{s:s,s:s,s:I,s:s,s:s,s:[{s:i,s:o,s:n,s:s?}]}", "id", st->id, "object", object,
                     "created", st->created, "model", st->model, "system_fingerprint", "fp_mock",
                     "choices", "index", 0, "delta", delta, "logprobs", "finish_reason", finish);
}

/* The tool input/arguments {"arg":"value"} as a JSON object. */
static json_t *s_tool_args_json(void)
{
    return json_loads(MOCK_TOOL_ARGS, 0, NULL);
}

/* Piece index of the streamed text (empty for an index out of range). */
static void s_stream_piece(const struct stream_state *st, size_t index, const char **piece,
                           size_t *len)
{
    *piece = "";
    *len = 0;
    if (index < st->pieces) {
        *piece = st->text.data + st->cuts[index];
        *len = st->cuts[index + 1] - st->cuts[index];
    }
}

/* JSON payload of one Anthropic stream event; its "type" is also the SSE event name. */
static json_t *s_anthropic_event_json(const struct stream_state *st, const struct stream_event *ev)
{
    const char *piece;
    size_t piece_len;
    size_t args_len = strlen(MOCK_TOOL_ARGS);
    size_t half = args_len / 2;
    switch (ev->kind) {
    case EV_MSG_START:
        return json_pack("{s:s,s:{s:s,s:s,s:s,s:s,s:[],s:n,s:n,s:{s:I,s:i}}}", "type",
                         "message_start", "message", "id", st->id, "type", "message", "role",
                         "assistant", "model", st->model, "content", "stop_reason", "stop_sequence",
                         "usage", "input_tokens", st->prompt_tokens, "output_tokens", 1);
    case EV_PING:
        return json_pack("{s:s}", "type", "ping");
    case EV_BLOCK_START:
        if (st->tool) {
            return json_pack("{s:s,s:i,s:{s:s,s:s,s:s,s:{}}}", "type", "content_block_start",
                             "index", 0, "content_block", "type", "tool_use", "id", st->call_id,
                             "name", st->tool_name, "input");
        }
        return json_pack("{s:s,s:i,s:{s:s,s:s}}", "type", "content_block_start", "index", 0,
                         "content_block", "type", "text", "text", "");
    case EV_CONTENT:
        s_stream_piece(st, ev->index, &piece, &piece_len);
        return json_pack("{s:s,s:i,s:{s:s,s:s%}}", "type", "content_block_delta", "index", 0,
                         "delta", "type", "text_delta", "text", piece, piece_len);
    case EV_TOOL_ARGS:
        return json_pack("{s:s,s:i,s:{s:s,s:s%}}", "type", "content_block_delta", "index", 0,
                         "delta", "type", "input_json_delta", "partial_json",
                         &MOCK_TOOL_ARGS[ev->index == 0 ? 0 : half],
                         ev->index == 0 ? half : args_len - half);
    case EV_BLOCK_STOP:
        return json_pack("{s:s,s:i}", "type", "content_block_stop", "index", 0);
    case EV_MSG_DELTA:
        return json_pack("{s:s,s:{s:s,s:n},s:{s:I}}", "type", "message_delta", "delta",
                         "stop_reason", st->tool ? "tool_use" : "end_turn", "stop_sequence",
                         "usage", "output_tokens", st->completion_tokens);
    case EV_MSG_STOP:
        return json_pack("{s:s}", "type", "message_stop");
    default:
        return NULL;
    }
}

/*
 * A GenerateContentResponse with one candidate (parts is consumed); finishReason only when
 * finish is set.
 */
static json_t *s_gemini_response(json_t *parts, bool finish, const char *model,
                                 const char *response_id, json_int_t prompt, json_int_t completion)
{
    return json_pack("{s:[{s:{s:s,s:o},s:s*,s:i}],s:{s:I,s:I,s:I},s:s,s:s}", "candidates",
                     "content", "role", "model", "parts", parts, "finishReason",
                     finish ? "STOP" : NULL, "index", 0, "usageMetadata", "promptTokenCount",
                     prompt, "candidatesTokenCount", completion, "totalTokenCount",
                     prompt + completion, "modelVersion", model, "responseId", response_id);
}

/* The parts of a Gemini function call to name with {"arg":"value"}. */
static json_t *s_gemini_call_parts(const char *name)
{
    return json_pack("[{s:{s:s,s:o}}]", "functionCall", "name", name, "args", s_tool_args_json());
}

/*
 * JSON payload of one Gemini stream event: one text piece with the usage so far (the last one
 * with finishReason), or the whole function call.
 */
static json_t *s_gemini_event_json(const struct stream_state *st, const struct stream_event *ev)
{
    if (ev->kind == EV_TOOL_HEAD) {
        return s_gemini_response(s_gemini_call_parts(st->tool_name), true, st->model, st->id,
                                 st->prompt_tokens, st->completion_tokens);
    }
    if (ev->kind != EV_CONTENT || ev->index >= st->pieces)
        return NULL;
    const char *piece;
    size_t piece_len;
    s_stream_piece(st, ev->index, &piece, &piece_len);
    json_int_t so_far = s_count_words(st->text.data, st->cuts[ev->index + 1]);
    return s_gemini_response(json_pack("[{s:s%}]", "text", piece, piece_len),
                             ev->index + 1 == st->pieces, st->model, st->id, st->prompt_tokens,
                             so_far);
}

/*
 * Renders one event as SSE text into st->pending: "data: ...\n\n" (OpenAI), "event: <type>\n
 * data: ...\n\n" (Anthropic) or "data: ...\r\n\r\n" (Gemini).
 */
static bool s_stream_build_event(struct stream_state *st, const struct stream_event *ev)
{
    st->pending.len = 0;
    st->pending_off = 0;
    if (ev->kind == EV_BAD) {
        if (st->wire == WIRE_ANTHROPIC)
            return s_sbuf_append_str(&st->pending,
                                     "event: content_block_delta\ndata: {not json\n\n");
        if (st->wire == WIRE_GEMINI)
            return s_sbuf_append_str(&st->pending, "data: {not json\r\n\r\n");
        return s_sbuf_append_str(&st->pending, "data: {not json\n\n");
    }
    if (ev->kind == EV_DONE)
        return s_sbuf_append_str(&st->pending, "data: [DONE]\n\n");
    json_t *obj;
    if (st->wire == WIRE_ANTHROPIC)
        obj = s_anthropic_event_json(st, ev);
    else if (st->wire == WIRE_GEMINI)
        obj = s_gemini_event_json(st, ev);
    else
        obj = s_stream_event_json(st, ev);
    if (!obj)
        return false;
    char *text = json_dumps(obj, JSON_COMPACT);
    bool ok = text != NULL;
    if (ok && st->wire == WIRE_ANTHROPIC) {
        const char *type = json_string_value(json_object_get(obj, "type"));
        ok = type && s_sbuf_append_str(&st->pending, "event: ") &&
             s_sbuf_append_str(&st->pending, type) && s_sbuf_append_str(&st->pending, "\n");
    }
    json_decref(obj);
    ok = ok && s_sbuf_append_str(&st->pending, "data: ") && s_sbuf_append_str(&st->pending, text) &&
         s_sbuf_append_str(&st->pending, st->wire == WIRE_GEMINI ? "\r\n\r\n" : "\n\n");
    free(text);
    return ok;
}

/*
 * MHD content reader: hands out one event per call (so each is flushed as its own chunk and
 * delays are visible to the client), sleeping /chunk-delay before every event but the first.
 */
static ssize_t s_stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    struct stream_state *st = cls;
    (void)pos;
    if (st->pending_off >= st->pending.len) {
        if (st->next_event >= st->n_events)
            return MHD_CONTENT_READER_END_OF_STREAM;
        if (st->next_event > 0 && st->chunk_delay_ms > 0 &&
            !s_wait_ms(st->srv, st->fd, st->chunk_delay_ms))
            return MHD_CONTENT_READER_END_WITH_ERROR;
        if (!s_stream_build_event(st, &st->events[st->next_event]))
            return MHD_CONTENT_READER_END_WITH_ERROR;
        st->next_event++;
    }
    size_t n = st->pending.len - st->pending_off;
    if (n > max)
        n = max;
    memcpy(buf, st->pending.data + st->pending_off, n);
    st->pending_off += n;
    return (ssize_t)n;
}

/* Everything a stream needs besides the modifiers, gathered by the endpoint handlers. */
struct stream_params {
    enum wire wire; /* WIRE_OPENAI (chat or completions), WIRE_ANTHROPIC or WIRE_GEMINI */
    bool chat;
    bool tool;
    bool include_usage;
    const char *model;
    const char *tool_name;
    const char *reply;
    size_t reply_len;
    json_int_t prompt_tokens;
    json_int_t created;
};

/* Creates the chunked (MHD_SIZE_UNKNOWN) SSE response and queues it. */
static enum MHD_Result s_send_stream(struct req_ctx *ctx, struct MHD_Connection *conn,
                                     const struct mods *m, const struct stream_params *sp)
{
    struct stream_state *st = calloc(1, sizeof(*st));
    if (!st)
        return MHD_NO;
    st->srv = ctx->srv;
    st->fd = s_connection_fd(conn);
    st->wire = sp->wire;
    st->chat = sp->chat;
    st->tool = sp->tool;
    st->include_usage = sp->include_usage;
    st->chunk_delay_ms = m->chunk_delay_ms;
    st->created = sp->created;
    st->prompt_tokens = sp->prompt_tokens;
    st->model = s_strdup(sp->model);
    st->tool_name = s_strdup(sp->tool_name ? sp->tool_name : "");
    const char *id_prefix = sp->chat ? "chatcmpl-mock-" : "cmpl-mock-";
    if (sp->wire == WIRE_ANTHROPIC)
        id_prefix = "msg_mock_";
    else if (sp->wire == WIRE_GEMINI)
        id_prefix = "mock-";
    const char *call_prefix = sp->wire == WIRE_ANTHROPIC ? "toolu_mock_" : "call_mock_";
    bool ok = st->model && st->tool_name &&
              snprintf(st->id, sizeof(st->id), "%s%lu", id_prefix, ctx->seq) > 0 &&
              snprintf(st->call_id, sizeof(st->call_id), "%s%lu", call_prefix, ctx->seq) > 0 &&
              s_stream_split(st, sp->reply, sp->reply_len, (size_t)m->chunks);
    if (ok) {
        st->completion_tokens = sp->tool ? s_count_words(MOCK_TOOL_ARGS, strlen(MOCK_TOOL_ARGS))
                                         : s_count_words(st->text.data, st->text.len);
        ok = s_stream_plan(st, m->truncate, m->bad_sse);
    }
    if (!ok) {
        s_stream_free(st);
        return MHD_NO;
    }
    struct MHD_Response *resp =
        MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, s_stream_read, st, s_stream_free);
    if (!resp) {
        s_stream_free(st);
        return MHD_NO;
    }
    return s_send(ctx, conn, MHD_HTTP_OK, resp, "text/event-stream", -1);
}

/* Parses the request body as a JSON object; NULL if it is not one. */
static json_t *s_parse_body_object(const struct req_ctx *ctx)
{
    json_error_t err;
    json_t *req =
        json_loadb(ctx->body.data ? ctx->body.data : "", ctx->body.len, JSON_ALLOW_NUL, &err);
    if (req && !json_is_object(req)) {
        json_decref(req);
        req = NULL;
    }
    return req;
}

static const char *s_model_of(const json_t *req)
{
    const json_t *model = json_object_get(req, "model");
    return json_is_string(model) ? json_string_value(model) : "mock";
}

static json_int_t s_now(void)
{
    time_t t = time(NULL);
    return t == (time_t)-1 ? 0 : (json_int_t)t;
}

/*
 * Text of a message content: a string, or the concatenated "text" of the {"type":"text"} parts
 * of an array. When out is NULL only the byte count is returned (for usage accounting).
 */
static bool s_content_text(const json_t *content, struct sbuf *out, size_t *bytes)
{
    if (json_is_string(content)) {
        *bytes += json_string_length(content);
        return !out || s_sbuf_append(out, json_string_value(content), json_string_length(content));
    }
    if (!json_is_array(content))
        return true;
    size_t i;
    const json_t *part;
    json_array_foreach(content, i, part)
    {
        const json_t *type = json_object_get(part, "type");
        const json_t *text = json_object_get(part, "text");
        if (!json_is_string(type) || strcmp(json_string_value(type), "text") != 0 ||
            !json_is_string(text))
            continue;
        *bytes += json_string_length(text);
        if (out && !s_sbuf_append(out, json_string_value(text), json_string_length(text)))
            return false;
    }
    return true;
}

/* Name of the function to "call": the forced one from tool_choice, else the first tool's. */
static const char *s_tool_name(const json_t *req)
{
    const json_t *tools = json_object_get(req, "tools");
    const json_t *choice = json_object_get(req, "tool_choice");
    if (!json_is_array(tools) || json_array_size(tools) == 0)
        return NULL;
    if (json_is_string(choice) && strcmp(json_string_value(choice), "none") == 0)
        return NULL;
    const json_t *name = json_object_get(json_object_get(choice, "function"), "name");
    if (!json_is_string(name))
        name = json_object_get(json_object_get(json_array_get(tools, 0), "function"), "name");
    return json_is_string(name) ? json_string_value(name) : "mock_tool";
}

/* reply = "mock: " + text cut to MOCK_REPLY_MAX bytes on a UTF-8 boundary. */
static bool s_make_reply(struct sbuf *reply, const char *text, size_t len)
{
    if (!text)
        text = "";
    return s_sbuf_append_str(reply, "mock: ") &&
           s_sbuf_append(reply, text, s_utf8_cut(text, len, MOCK_REPLY_MAX));
}

static json_int_t s_prompt_tokens(size_t bytes)
{
    json_int_t tokens = s_tokens_from_bytes(bytes);
    return tokens < 1 ? 1 : tokens;
}

/* Copy of a path span for JSON: bytes outside ASCII become '?' (jansson wants UTF-8). */
static char *s_strndup_ascii(const char *s, size_t len)
{
    char *p = malloc(len + 1);
    if (!p)
        return NULL;
    for (size_t i = 0; i < len; i++)
        p[i] = ((unsigned char)s[i] < 0x80) ? s[i] : '?';
    p[len] = '\0';
    return p;
}

/* Member under its camelCase name, else its snake_case one (Gemini accepts both). */
static const json_t *s_get2(const json_t *obj, const char *camel, const char *snake)
{
    const json_t *v = json_object_get(obj, camel);
    return v ? v : json_object_get(obj, snake);
}

/* True if an Anthropic content array has a block of the given type. */
static bool s_has_block(const json_t *content, const char *type)
{
    size_t i;
    const json_t *block;
    json_array_foreach(content, i, block)
    {
        const json_t *t = json_object_get(block, "type");
        if (json_is_string(t) && strcmp(json_string_value(t), type) == 0)
            return true;
    }
    return false;
}

/* Prompt bytes of an Anthropic content (or system): text, and the text inside tool_result. */
static void s_anthropic_prompt_bytes(const json_t *content, size_t *bytes)
{
    (void)s_content_text(content, NULL, bytes);
    size_t i;
    const json_t *block;
    json_array_foreach(content, i, block)
    {
        const json_t *t = json_object_get(block, "type");
        if (json_is_string(t) && strcmp(json_string_value(t), "tool_result") == 0)
            (void)s_content_text(json_object_get(block, "content"), NULL, bytes);
    }
}

/* Anthropic tool to "use": the forced one ({"type":"tool","name"}), else the first tool's. */
static const char *s_anthropic_tool_name(const json_t *req)
{
    const json_t *tools = json_object_get(req, "tools");
    const json_t *choice = json_object_get(req, "tool_choice");
    const json_t *type = json_object_get(choice, "type");
    const char *type_s = json_is_string(type) ? json_string_value(type) : "";
    if (!json_is_array(tools) || json_array_size(tools) == 0 || strcmp(type_s, "none") == 0)
        return NULL;
    const json_t *name = json_object_get(choice, "name");
    if (strcmp(type_s, "tool") != 0 || !json_is_string(name))
        name = json_object_get(json_array_get(tools, 0), "name");
    return json_is_string(name) ? json_string_value(name) : "mock_tool";
}

/*
 * Text parts of a Gemini Content: appended to out (unless NULL) and counted in bytes; notes
 * whether there were text parts and functionResponse parts.
 */
static bool s_gemini_parts(const json_t *content, struct sbuf *out, size_t *bytes, bool *has_text,
                           bool *has_fn_response)
{
    const json_t *parts = json_object_get(content, "parts");
    size_t i;
    const json_t *part;
    json_array_foreach(parts, i, part)
    {
        const json_t *text = json_object_get(part, "text");
        if (json_is_string(text)) {
            *has_text = true;
            *bytes += json_string_length(text);
            if (out && !s_sbuf_append(out, json_string_value(text), json_string_length(text)))
                return false;
        } else if (s_get2(part, "functionResponse", "function_response")) {
            *has_fn_response = true;
        }
    }
    return true;
}

/*
 * Gemini function to call: none with toolConfig mode NONE or without functionDeclarations; with
 * mode ANY the first allowedFunctionNames entry if any; else the first declared function.
 */
static const char *s_gemini_tool_name(const json_t *req)
{
    const json_t *cfg = s_get2(s_get2(req, "toolConfig", "tool_config"), "functionCallingConfig",
                               "function_calling_config");
    const json_t *mode = json_object_get(cfg, "mode");
    const char *mode_s = json_is_string(mode) ? json_string_value(mode) : "";
    if (strcmp(mode_s, "NONE") == 0)
        return NULL;
    const json_t *tools = json_object_get(req, "tools");
    const char *first = NULL;
    size_t i;
    const json_t *tool;
    json_array_foreach(tools, i, tool)
    {
        const json_t *decls = s_get2(tool, "functionDeclarations", "function_declarations");
        if (json_array_size(decls) > 0) {
            const json_t *name = json_object_get(json_array_get(decls, 0), "name");
            first = json_is_string(name) ? json_string_value(name) : "mock_tool";
            break;
        }
    }
    if (first && strcmp(mode_s, "ANY") == 0) {
        const json_t *allowed =
            json_array_get(s_get2(cfg, "allowedFunctionNames", "allowed_function_names"), 0);
        if (json_is_string(allowed))
            return json_string_value(allowed);
    }
    return first;
}

/* POST .../chat/completions: echo of the last user message, tool call, or SSE stream. */
static enum MHD_Result s_handle_chat(struct req_ctx *ctx, struct MHD_Connection *conn,
                                     const struct mods *m)
{
    json_t *req = s_parse_body_object(ctx);
    if (!req)
        return s_send_error(ctx, conn, MHD_HTTP_BAD_REQUEST, -1);

    size_t prompt_bytes = 0;
    const json_t *last_user = NULL;
    const json_t *messages = json_object_get(req, "messages");
    size_t i;
    const json_t *msg;
    bool ok = true;
    json_array_foreach(messages, i, msg)
    {
        const json_t *role = json_object_get(msg, "role");
        const json_t *content = json_object_get(msg, "content");
        ok = ok && s_content_text(content, NULL, &prompt_bytes);
        if (json_is_string(role) && strcmp(json_string_value(role), "user") == 0)
            last_user = content;
    }
    struct sbuf user = {0};
    struct sbuf reply = {0};
    size_t ignored = 0;
    ok = ok && s_content_text(last_user, &user, &ignored) && s_sbuf_append_str(&reply, "mock: ") &&
         s_sbuf_append(&reply, user.data ? user.data : "",
                       s_utf8_cut(user.data ? user.data : "", user.len, MOCK_REPLY_MAX));
    s_sbuf_free(&user);
    if (!ok) {
        s_sbuf_free(&reply);
        json_decref(req);
        return MHD_NO;
    }

    json_int_t prompt_tokens = s_tokens_from_bytes(prompt_bytes);
    if (prompt_tokens < 1)
        prompt_tokens = 1;
    const char *model = s_model_of(req);
    const char *tool = s_tool_name(req);
    json_int_t created = s_now();
    enum MHD_Result rc;

    if (json_is_true(json_object_get(req, "stream"))) {
        struct stream_params sp = {
            .chat = true,
            .tool = tool != NULL,
            .include_usage = json_is_true(
                json_object_get(json_object_get(req, "stream_options"), "include_usage")),
            .model = model,
            .tool_name = tool,
            .reply = reply.data,
            .reply_len = reply.len,
            .prompt_tokens = prompt_tokens,
            .created = created,
        };
        rc = s_send_stream(ctx, conn, m, &sp);
    } else {
        char id[64];
        char call_id[64];
        json_t *message;
        json_int_t completion;
        if (snprintf(id, sizeof(id), "chatcmpl-mock-%lu", ctx->seq) <= 0 ||
            snprintf(call_id, sizeof(call_id), "call_mock_%lu", ctx->seq) <= 0) {
            message = NULL;
            completion = 0;
        } else if (tool) {
            message = json_pack("{s:s,s:n,s:[{s:s,s:s,s:{s:s,s:s}}],s:n}", "role", "assistant",
                                "content", "tool_calls", "id", call_id, "type", "function",
                                "function", "name", tool, "arguments", MOCK_TOOL_ARGS, "refusal");
            completion = s_count_words(MOCK_TOOL_ARGS, strlen(MOCK_TOOL_ARGS));
        } else {
            message = json_pack("{s:s,s:s%,s:n}", "role", "assistant", "content", reply.data,
                                reply.len, "refusal");
            completion = s_count_words(reply.data, reply.len);
        }
        json_t *body = json_pack("{s:s,s:s,s:I,s:s,s:s,s:[{s:i,s:o,s:n,s:s}],s:o}", "id", id,
                                 "object", "chat.completion", "created", created, "model", model,
                                 "system_fingerprint", "fp_mock", "choices", "index", 0, "message",
                                 message, "logprobs", "finish_reason", tool ? "tool_calls" : "stop",
                                 "usage", s_usage_json(prompt_tokens, completion));
        rc = s_send_json(ctx, conn, MHD_HTTP_OK, body, m->truncate);
    }
    s_sbuf_free(&reply);
    json_decref(req);
    return rc;
}

/* POST .../completions (legacy): "mock: " + prompt, optionally streamed. */
static enum MHD_Result s_handle_completions(struct req_ctx *ctx, struct MHD_Connection *conn,
                                            const struct mods *m)
{
    json_t *req = s_parse_body_object(ctx);
    if (!req)
        return s_send_error(ctx, conn, MHD_HTTP_BAD_REQUEST, -1);
    const json_t *prompt = json_object_get(req, "prompt");
    if (json_is_array(prompt))
        prompt = json_array_get(prompt, 0);
    const char *ptext = json_is_string(prompt) ? json_string_value(prompt) : "";
    size_t plen = json_is_string(prompt) ? json_string_length(prompt) : 0;

    struct sbuf reply = {0};
    if (!s_sbuf_append_str(&reply, "mock: ") ||
        !s_sbuf_append(&reply, ptext, s_utf8_cut(ptext, plen, MOCK_REPLY_MAX))) {
        s_sbuf_free(&reply);
        json_decref(req);
        return MHD_NO;
    }
    json_int_t prompt_tokens = s_tokens_from_bytes(plen);
    if (prompt_tokens < 1)
        prompt_tokens = 1;
    const char *model = s_model_of(req);
    json_int_t created = s_now();
    enum MHD_Result rc;
    if (json_is_true(json_object_get(req, "stream"))) {
        struct stream_params sp = {
            .chat = false,
            .include_usage = json_is_true(
                json_object_get(json_object_get(req, "stream_options"), "include_usage")),
            .model = model,
            .reply = reply.data,
            .reply_len = reply.len,
            .prompt_tokens = prompt_tokens,
            .created = created,
        };
        rc = s_send_stream(ctx, conn, m, &sp);
    } else {
        char id[64];
        json_t *body = NULL;
        if (snprintf(id, sizeof(id), "cmpl-mock-%lu", ctx->seq) > 0) {
            body = json_pack("{s:s,s:s,s:I,s:s,s:[{s:s%,s:i,s:n,s:s}],s:o}", "id", id, "object",
                             "text_completion", "created", created, "model", model, "choices",
                             "text", reply.data, reply.len, "index", 0, "logprobs", "finish_reason",
                             "stop", "usage",
                             s_usage_json(prompt_tokens, s_count_words(reply.data, reply.len)));
        }
        rc = s_send_json(ctx, conn, MHD_HTTP_OK, body, m->truncate);
    }
    s_sbuf_free(&reply);
    json_decref(req);
    return rc;
}

/*
 * POST .../v1/messages: Anthropic Messages. Echo of the last user text, a tool_use block, or the
 * Anthropic event stream; max_tokens is required.
 */
static enum MHD_Result s_handle_messages(struct req_ctx *ctx, struct MHD_Connection *conn,
                                         const struct mods *m)
{
    json_t *req = s_parse_body_object(ctx);
    if (!req || !json_is_integer(json_object_get(req, "max_tokens"))) {
        json_decref(req);
        return s_send_error(ctx, conn, MHD_HTTP_BAD_REQUEST, -1);
    }

    size_t prompt_bytes = 0;
    s_anthropic_prompt_bytes(json_object_get(req, "system"), &prompt_bytes);
    const json_t *last_user = NULL;
    const json_t *messages = json_object_get(req, "messages");
    size_t i;
    const json_t *msg;
    json_array_foreach(messages, i, msg)
    {
        const json_t *role = json_object_get(msg, "role");
        const json_t *content = json_object_get(msg, "content");
        s_anthropic_prompt_bytes(content, &prompt_bytes);
        if (json_is_string(role) && strcmp(json_string_value(role), "user") == 0)
            last_user = content;
    }
    struct sbuf user = {0};
    struct sbuf reply = {0};
    size_t ignored = 0;
    bool ok;
    if (!json_is_string(last_user) && !s_has_block(last_user, "text") &&
        s_has_block(last_user, "tool_result"))
        ok = s_sbuf_append_str(&reply, "mock: tool result received");
    else
        ok =
            s_content_text(last_user, &user, &ignored) && s_make_reply(&reply, user.data, user.len);
    s_sbuf_free(&user);
    if (!ok) {
        s_sbuf_free(&reply);
        json_decref(req);
        return MHD_NO;
    }

    json_int_t prompt_tokens = s_prompt_tokens(prompt_bytes);
    const char *model = s_model_of(req);
    const char *tool = s_anthropic_tool_name(req);
    enum MHD_Result rc;
    if (json_is_true(json_object_get(req, "stream"))) {
        struct stream_params sp = {
            .wire = WIRE_ANTHROPIC,
            .tool = tool != NULL,
            .model = model,
            .tool_name = tool,
            .reply = reply.data,
            .reply_len = reply.len,
            .prompt_tokens = prompt_tokens,
        };
        rc = s_send_stream(ctx, conn, m, &sp);
    } else {
        char id[64];
        char call_id[64];
        json_t *content = NULL;
        json_int_t completion = 0;
        if (snprintf(id, sizeof(id), "msg_mock_%lu", ctx->seq) <= 0 ||
            snprintf(call_id, sizeof(call_id), "toolu_mock_%lu", ctx->seq) <= 0) {
            content = NULL;
        } else if (tool) {
            content = json_pack("[{s:s,s:s,s:s,s:o}]", "type", "tool_use", "id", call_id, "name",
                                tool, "input", s_tool_args_json());
            completion = s_count_words(MOCK_TOOL_ARGS, strlen(MOCK_TOOL_ARGS));
        } else {
            content = json_pack("[{s:s,s:s%}]", "type", "text", "text", reply.data, reply.len);
            completion = s_count_words(reply.data, reply.len);
        }
        json_t *body =
            json_pack("{s:s,s:s,s:s,s:s,s:o,s:s,s:n,s:{s:I,s:I}}", "id", id, "type", "message",
                      "role", "assistant", "model", model, "content", content, "stop_reason",
                      tool ? "tool_use" : "end_turn", "stop_sequence", "usage", "input_tokens",
                      prompt_tokens, "output_tokens", completion);
        rc = s_send_json(ctx, conn, MHD_HTTP_OK, body, m->truncate);
    }
    s_sbuf_free(&reply);
    json_decref(req);
    return rc;
}

/*
 * POST .../models/<model>:generateContent and :streamGenerateContent (always SSE, whatever the
 * alt query parameter): echo of the last user text, a functionCall part, or the stream.
 */
static enum MHD_Result s_handle_gemini(struct req_ctx *ctx, struct MHD_Connection *conn,
                                       const struct mods *m, bool stream)
{
    json_t *req = s_parse_body_object(ctx);
    if (!req)
        return s_send_error(ctx, conn, MHD_HTTP_BAD_REQUEST, -1);

    size_t prompt_bytes = 0;
    bool has_text = false;
    bool has_fn_response = false;
    bool ok = s_gemini_parts(s_get2(req, "systemInstruction", "system_instruction"), NULL,
                             &prompt_bytes, &has_text, &has_fn_response);
    const json_t *last_user = NULL;
    const json_t *contents = json_object_get(req, "contents");
    size_t i;
    const json_t *content;
    json_array_foreach(contents, i, content)
    {
        const json_t *role = json_object_get(content, "role");
        const char *role_s = json_is_string(role) ? json_string_value(role) : NULL;
        ok = ok && s_gemini_parts(content, NULL, &prompt_bytes, &has_text, &has_fn_response);
        if (!role || (role_s && (strcmp(role_s, "user") == 0 || strcmp(role_s, "function") == 0)))
            last_user = content;
    }
    struct sbuf user = {0};
    struct sbuf reply = {0};
    size_t ignored = 0;
    has_text = false;
    has_fn_response = false;
    ok = ok && s_gemini_parts(last_user, &user, &ignored, &has_text, &has_fn_response);
    if (ok && !has_text && has_fn_response)
        ok = s_sbuf_append_str(&reply, "mock: function result received");
    else if (ok)
        ok = s_make_reply(&reply, user.data, user.len);
    s_sbuf_free(&user);
    char *model = s_strndup_ascii(m->model ? m->model : "mock", m->model ? m->model_len : 4);
    if (!ok || !model) {
        free(model);
        s_sbuf_free(&reply);
        json_decref(req);
        return MHD_NO;
    }

    json_int_t prompt_tokens = s_prompt_tokens(prompt_bytes);
    const char *tool = s_gemini_tool_name(req);
    enum MHD_Result rc;
    if (stream) {
        struct stream_params sp = {
            .wire = WIRE_GEMINI,
            .tool = tool != NULL,
            .model = model,
            .tool_name = tool,
            .reply = reply.data,
            .reply_len = reply.len,
            .prompt_tokens = prompt_tokens,
        };
        rc = s_send_stream(ctx, conn, m, &sp);
    } else {
        char id[48];
        json_t *body = NULL;
        if (snprintf(id, sizeof(id), "mock-%lu", ctx->seq) > 0) {
            json_t *parts = tool ? s_gemini_call_parts(tool)
                                 : json_pack("[{s:s%}]", "text", reply.data, reply.len);
            json_int_t completion = tool ? s_count_words(MOCK_TOOL_ARGS, strlen(MOCK_TOOL_ARGS))
                                         : s_count_words(reply.data, reply.len);
            body = s_gemini_response(parts, true, model, id, prompt_tokens, completion);
        }
        rc = s_send_json(ctx, conn, MHD_HTTP_OK, body, m->truncate);
    }
    free(model);
    s_sbuf_free(&reply);
    json_decref(req);
    return rc;
}

/*
 * Deterministic pseudo-embedding: FNV-1a over the text, seeded per dimension, in [0, 1). The
 * first MOCK_EMBED_DIM values do not depend on dim.
 */
static void s_embed_vector(const char *text, size_t len, float *out, size_t dim)
{
    for (size_t k = 0; k < dim; k++) {
        uint32_t h = 2166136261u ^ ((uint32_t)k * 0x9E3779B9u);
        for (size_t i = 0; i < len; i++) {
            h ^= (unsigned char)text[i];
            h *= 16777619u;
        }
        /* Multiples of 1/1024 are exact in float32 and print exactly in JSON. */
        out[k] = (float)(h % 1024u) / 1024.0f;
    }
}

/* Standard base64 with padding; out must hold 4 * ((len + 2) / 3) + 1 bytes. */
static void s_base64_encode(const unsigned char *in, size_t len, char *out)
{
    static const char k_alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t o = 0;
    for (size_t i = 0; i < len; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < len)
            v |= (uint32_t)in[i + 1] << 8;
        if (i + 2 < len)
            v |= in[i + 2];
        out[o++] = k_alphabet[(v >> 18) & 63];
        out[o++] = k_alphabet[(v >> 12) & 63];
        out[o++] = i + 1 < len ? k_alphabet[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < len ? k_alphabet[v & 63] : '=';
    }
    out[o] = '\0';
}

/* dim values for text, as a float array or base64 of little-endian float32; NULL on failure. */
static json_t *s_embedding_values(const char *text, size_t len, size_t dim, bool base64)
{
    float *vec = calloc(dim, sizeof(*vec));
    if (!vec)
        return NULL;
    s_embed_vector(text, len, vec, dim);
    json_t *embedding = NULL;
    if (base64) {
        size_t raw_len = dim * 4;
        unsigned char *raw = malloc(raw_len);
        char *b64 = malloc(4 * ((raw_len + 2) / 3) + 1);
        if (raw && b64) {
            for (size_t k = 0; k < dim; k++) {
                uint32_t bits;
                memcpy(&bits, &vec[k], sizeof(bits));
                for (size_t b = 0; b < 4; b++)
                    raw[k * 4 + b] = (unsigned char)(bits >> (8 * b));
            }
            s_base64_encode(raw, raw_len, b64);
            embedding = json_string(b64);
        }
        free(raw);
        free(b64);
    } else {
        embedding = json_array();
        for (size_t k = 0; embedding && k < dim; k++) {
            if (json_array_append_new(embedding, json_real((double)vec[k])) != 0) {
                json_decref(embedding);
                embedding = NULL;
            }
        }
    }
    free(vec);
    return embedding;
}

/* Shape of the embeddings of .../embeddings (OpenAI, Voyage) and .../embed (TEI). */
struct embed_opts {
    size_t dim;
    bool base64;
    bool bare; /* TEI: the values array alone instead of an "embedding" object */
};

/* One embedding object for input text (OpenAI, Voyage), or the bare values array (TEI). */
static json_t *s_embedding_item(const char *text, size_t len, size_t index,
                                const struct embed_opts *o)
{
    json_t *embedding = s_embedding_values(text, len, o->dim, o->base64);
    if (o->bare)
        return embedding;
    return json_pack("{s:s,s:I,s:o}", "object", "embedding", "index", (json_int_t)index,
                     "embedding", embedding);
}

/* Requested embedding size: absent or null keeps *dim, else an integer 1..MOCK_MAX_EMBED_DIM. */
static bool s_embed_dim(const json_t *v, size_t *dim)
{
    if (!v || json_is_null(v))
        return true;
    if (!json_is_integer(v) || json_integer_value(v) < 1 ||
        json_integer_value(v) > MOCK_MAX_EMBED_DIM)
        return false;
    *dim = (size_t)json_integer_value(v);
    return true;
}

/*
 * Appends the embedding of one input (a string, or a token array which is embedded through its
 * compact JSON text) and counts its bytes. Returns false on an input of the wrong type.
 */
static bool s_embed_input(const json_t *input, json_t *data, const struct embed_opts *o,
                          size_t *bytes)
{
    char *dumped = NULL;
    const char *text;
    size_t len;
    if (json_is_string(input)) {
        text = json_string_value(input);
        len = json_string_length(input);
    } else if (json_is_array(input)) {
        dumped = json_dumps(input, JSON_COMPACT);
        if (!dumped)
            return false;
        text = dumped;
        len = strlen(dumped);
    } else {
        return false;
    }
    *bytes += len;
    bool ok =
        json_array_append_new(data, s_embedding_item(text, len, json_array_size(data), o)) == 0;
    free(dumped);
    return ok;
}

/*
 * POST .../embeddings (OpenAI; Voyage with /voyage: output_dimension, usage without
 * prompt_tokens) and POST .../embed (TEI: "inputs", a bare array of value arrays).
 */
static enum MHD_Result s_handle_embeddings(struct req_ctx *ctx, struct MHD_Connection *conn,
                                           const struct mods *m)
{
    json_t *req = s_parse_body_object(ctx);
    if (!req)
        return s_send_error(ctx, conn, MHD_HTTP_BAD_REQUEST, -1);
    bool tei = ctx->wire == WIRE_TEI;
    bool voyage = ctx->wire == WIRE_VOYAGE;
    const json_t *input = json_object_get(req, tei ? "inputs" : "input");
    const json_t *format = json_object_get(req, "encoding_format");
    struct embed_opts o = {
        .dim = MOCK_EMBED_DIM,
        .base64 =
            !tei && json_is_string(format) && strcmp(json_string_value(format), "base64") == 0,
        .bare = tei,
    };
    json_t *data = json_array();
    size_t bytes = 0;
    bool ok =
        data != NULL && (!voyage || s_embed_dim(json_object_get(req, "output_dimension"), &o.dim));

    /* A single token array (array of integers) is one input, any other array is a list. */
    bool single = json_is_string(input) ||
                  (json_is_array(input) && json_is_integer(json_array_get(input, 0)));
    if (!json_is_string(input) && (!json_is_array(input) || json_array_size(input) == 0)) {
        ok = false;
    } else if (ok && single) {
        ok = s_embed_input(input, data, &o, &bytes);
    } else if (ok) {
        size_t i;
        const json_t *item;
        json_array_foreach(input, i, item)
        {
            if (!s_embed_input(item, data, &o, &bytes)) {
                ok = false;
                break;
            }
        }
    }
    if (!ok) {
        json_decref(data);
        json_decref(req);
        return s_send_error(ctx, conn, MHD_HTTP_BAD_REQUEST, -1);
    }
    json_int_t tokens = s_tokens_from_bytes(bytes);
    json_t *body;
    if (tei)
        body = data;
    else if (voyage)
        body = json_pack("{s:s,s:o,s:s,s:{s:I}}", "object", "list", "data", data, "model",
                         s_model_of(req), "usage", "total_tokens", tokens);
    else
        body = json_pack("{s:s,s:o,s:s,s:{s:I,s:I}}", "object", "list", "data", data, "model",
                         s_model_of(req), "usage", "prompt_tokens", tokens, "total_tokens", tokens);
    json_decref(req);
    return s_send_json(ctx, conn, MHD_HTTP_OK, body, m->truncate);
}

/*
 * {"values":[...]} for one Gemini embed request {content:{parts:[{text}]},
 * outputDimensionality?}; NULL when it is malformed.
 */
static json_t *s_gemini_embedding(const json_t *request)
{
    const json_t *content = json_object_get(request, "content");
    size_t dim = MOCK_EMBED_DIM;
    if (!json_is_object(content) ||
        !s_embed_dim(s_get2(request, "outputDimensionality", "output_dimensionality"), &dim))
        return NULL;
    struct sbuf text = {0};
    size_t bytes = 0;
    bool has_text = false;
    bool has_fn_response = false;
    json_t *values = NULL;
    if (s_gemini_parts(content, &text, &bytes, &has_text, &has_fn_response))
        values = s_embedding_values(text.data ? text.data : "", text.len, dim, false);
    s_sbuf_free(&text);
    return json_pack("{s:o}", "values", values);
}

/*
 * POST .../models/<model>:batchEmbedContents ({requests:[...]} -> {"embeddings":[...]}, in
 * order) and :embedContent (one request -> {"embedding":{...}}).
 */
static enum MHD_Result s_handle_gemini_embed(struct req_ctx *ctx, struct MHD_Connection *conn,
                                             const struct mods *m, bool batch)
{
    json_t *req = s_parse_body_object(ctx);
    if (!req)
        return s_send_error(ctx, conn, MHD_HTTP_BAD_REQUEST, -1);
    json_t *body;
    if (batch) {
        const json_t *requests = json_object_get(req, "requests");
        json_t *list = json_array_size(requests) > 0 ? json_array() : NULL;
        size_t i;
        const json_t *item;
        json_array_foreach(requests, i, item)
        {
            if (!list)
                break;
            if (json_array_append_new(list, s_gemini_embedding(item)) != 0) {
                json_decref(list);
                list = NULL;
            }
        }
        body = json_pack("{s:o}", "embeddings", list);
    } else {
        body = json_pack("{s:o}", "embedding", s_gemini_embedding(req));
    }
    json_decref(req);
    if (!body)
        return s_send_error(ctx, conn, MHD_HTTP_BAD_REQUEST, -1);
    return s_send_json(ctx, conn, MHD_HTTP_OK, body, m->truncate);
}

static enum MHD_Result s_handle_models(struct req_ctx *ctx, struct MHD_Connection *conn,
                                       const struct mods *m)
{
    json_t *body = json_pack("{s:s,s:[{s:s,s:s,s:i,s:s}]}", "object", "list", "data", "id",
                             "mock-model", "object", "model", "created", 0, "owned_by", "mock");
    return s_send_json(ctx, conn, MHD_HTTP_OK, body, m->truncate);
}

/* Length of the path part of the raw request target (query string and fragment excluded). */
static size_t s_path_len(const char *uri)
{
    return strcspn(uri, "?#");
}

static bool s_path_is(const struct req_ctx *ctx, const char *path)
{
    size_t len = s_path_len(ctx->uri);
    return strlen(path) == len && memcmp(ctx->uri, path, len) == 0;
}

/* The /_mock/ control routes used by tests to inspect and reset the mock. */
static enum MHD_Result s_handle_control(struct req_ctx *ctx, struct MHD_Connection *conn,
                                        const char *method)
{
    struct mock_server *srv = ctx->srv;
    bool get = strcmp(method, MHD_HTTP_METHOD_GET) == 0;
    json_t *body = NULL;

    if (get && s_path_is(ctx, "/_mock/health")) {
        body = json_pack("{s:b}", "ok", 1);
    } else if (get && s_path_is(ctx, "/_mock/stats")) {
        body = json_pack("{s:I,s:I,s:I}", "connections_opened",
                         (json_int_t)atomic_load(&srv->conns_opened), "connections_closed",
                         (json_int_t)atomic_load(&srv->conns_closed), "active_requests",
                         (json_int_t)atomic_load(&srv->active_requests));
    } else if (s_path_is(ctx, "/_mock/requests") || (get && s_path_is(ctx, "/_mock/count"))) {
        bool del = strcmp(method, MHD_HTTP_METHOD_DELETE) == 0;
        if (!get && !del)
            return s_send_error(ctx, conn, MHD_HTTP_NOT_FOUND, -1);
        char *text = NULL;
        if (pthread_mutex_lock(&srv->lock) != 0)
            return MHD_NO;
        size_t n = json_array_size(srv->records);
        if (del) {
            if (json_array_clear(srv->records) == 0)
                body = json_pack("{s:I}", "cleared", (json_int_t)n);
        } else if (s_path_is(ctx, "/_mock/count")) {
            body = json_pack("{s:I}", "count", (json_int_t)n);
        } else {
            text = json_dumps(srv->records, JSON_COMPACT);
        }
        (void)pthread_mutex_unlock(&srv->lock);
        if (text) {
            return s_send(ctx, conn, MHD_HTTP_OK, s_response_from_owned(text, strlen(text)),
                          "application/json", -1);
        }
    } else {
        return s_send_error(ctx, conn, MHD_HTTP_NOT_FOUND, -1);
    }
    return s_send_json(ctx, conn, MHD_HTTP_OK, body, false);
}

/* Wire format of the answer (and of its errors) to a request for ep. */
static enum wire s_wire_of(enum endpoint ep, const struct mods *m)
{
    switch (ep) {
    case EP_MESSAGES:
    case EP_COUNT_TOKENS:
        return WIRE_ANTHROPIC;
    case EP_GEMINI_GENERATE:
    case EP_GEMINI_STREAM:
    case EP_GEMINI_BATCH_EMBED:
    case EP_GEMINI_EMBED:
        return WIRE_GEMINI;
    case EP_TEI_EMBED:
        return WIRE_TEI;
    case EP_EMBEDDINGS:
        return m->voyage ? WIRE_VOYAGE : WIRE_OPENAI;
    default:
        return WIRE_OPENAI;
    }
}

/* Recorded (non-control) request: apply modifiers in order, then the endpoint handler. */
static enum MHD_Result s_handle_api(struct req_ctx *ctx, struct MHD_Connection *conn,
                                    const char *method)
{
    struct mods m;
    enum endpoint ep = s_parse_path(ctx->uri, s_path_len(ctx->uri), &m);
    int fd = s_connection_fd(conn);
    ctx->wire = s_wire_of(ep, &m);

    if (m.hang) {
        /* Never answer: wait until the client leaves, shutdown, or 120 s; then drop it. */
        (void)s_wait_ms(ctx->srv, fd, MOCK_HANG_MS);
        return MHD_NO;
    }
    if (m.delay_ms > 0 && !s_wait_ms(ctx->srv, fd, m.delay_ms))
        return MHD_NO;
    if (ctx->too_large)
        return s_send_error(ctx, conn, MHD_HTTP_CONTENT_TOO_LARGE, -1);
    if (m.status >= 400)
        return s_send_error(ctx, conn, (unsigned int)m.status, m.retry_after);

    bool post = strcmp(method, MHD_HTTP_METHOD_POST) == 0;
    bool get =
        strcmp(method, MHD_HTTP_METHOD_GET) == 0 || strcmp(method, MHD_HTTP_METHOD_HEAD) == 0;
    bool known = (ep == EP_MODELS) ? get : (ep != EP_NONE && post);
    if (!known)
        return s_send_error(ctx, conn, MHD_HTTP_NOT_FOUND, -1);
    if (m.garbage) {
        return s_send(ctx, conn, MHD_HTTP_OK,
                      s_response_from_owned(s_strdup(MOCK_GARBAGE), strlen(MOCK_GARBAGE)),
                      "application/json", -1);
    }
    switch (ep) {
    case EP_CHAT:
        return s_handle_chat(ctx, conn, &m);
    case EP_COMPLETIONS:
        return s_handle_completions(ctx, conn, &m);
    case EP_EMBEDDINGS:
        return s_handle_embeddings(ctx, conn, &m);
    case EP_MODELS:
        return s_handle_models(ctx, conn, &m);
    case EP_MESSAGES:
        return s_handle_messages(ctx, conn, &m);
    case EP_COUNT_TOKENS: {
        /* A count that cannot be mistaken for the proxy's estimate: 1000 + body bytes. */
        json_t *body = json_pack("{s:I}", "input_tokens", (json_int_t)(1000 + ctx->body.len));
        return s_send_json(ctx, conn, MHD_HTTP_OK, body, false);
    }
    case EP_GEMINI_GENERATE:
        return s_handle_gemini(ctx, conn, &m, false);
    case EP_GEMINI_STREAM:
        return s_handle_gemini(ctx, conn, &m, true);
    case EP_GEMINI_BATCH_EMBED:
        return s_handle_gemini_embed(ctx, conn, &m, true);
    case EP_GEMINI_EMBED:
        return s_handle_gemini_embed(ctx, conn, &m, false);
    case EP_TEI_EMBED:
        return s_handle_embeddings(ctx, conn, &m);
    default:
        return s_send_error(ctx, conn, MHD_HTTP_NOT_FOUND, -1);
    }
}

static struct req_ctx *s_ctx_new(struct mock_server *srv, const char *uri)
{
    struct req_ctx *ctx = calloc(1, sizeof(*ctx));
    if (!ctx)
        return NULL;
    ctx->srv = srv;
    ctx->uri = s_strdup(uri ? uri : "/");
    if (!ctx->uri) {
        free(ctx);
        return NULL;
    }
    return ctx;
}

/*
 * MHD URI log callback: the only place where the raw request target (with its query string) is
 * available, so the per-request context is created here.
 */
static void *s_log_uri(void *cls, const char *uri, struct MHD_Connection *conn)
{
    (void)conn;
    return s_ctx_new(cls, uri);
}

/*
 * MHD access handler: first call starts the request, middle calls accumulate the body (bounded by
 * 64 MiB, the excess is discarded and answered with 413), the last call answers.
 */
static enum MHD_Result s_handle_access(void *cls, struct MHD_Connection *conn, const char *url,
                                       const char *method, const char *version,
                                       const char *upload_data, size_t *upload_data_size,
                                       void **con_cls)
{
    struct mock_server *srv = cls;
    struct req_ctx *ctx = *con_cls;
    (void)version;

    if (!ctx) {
        ctx = s_ctx_new(srv, url);
        if (!ctx)
            return MHD_NO;
        *con_cls = ctx;
    }
    if (!ctx->started) {
        ctx->started = true;
        ctx->seq = atomic_fetch_add(&srv->next_seq, 1) + 1;
        ctx->is_control = strncmp(ctx->uri, "/_mock/", 7) == 0;
        if (!ctx->is_control) {
            ctx->counted = true;
            atomic_fetch_add(&srv->active_requests, 1);
        }
        if (*upload_data_size == 0)
            return MHD_YES;
    }
    if (*upload_data_size != 0) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        if (ctx->too_large)
            return MHD_YES;
        if (n > MOCK_MAX_BODY - ctx->body.len || !s_sbuf_append(&ctx->body, upload_data, n)) {
            ctx->too_large = true;
            s_sbuf_free(&ctx->body);
        }
        return MHD_YES;
    }
    if (ctx->is_control)
        return s_handle_control(ctx, conn, method);
    s_record_request(ctx, conn, method);
    return s_handle_api(ctx, conn, method);
}

/* MHD request-completed callback: ends the active-request count and frees the context. */
static void s_complete_request(void *cls, struct MHD_Connection *conn, void **con_cls,
                               enum MHD_RequestTerminationCode toe)
{
    struct mock_server *srv = cls;
    struct req_ctx *ctx = *con_cls;
    (void)conn;
    (void)toe;
    if (!ctx)
        return;
    if (ctx->counted)
        atomic_fetch_sub(&srv->active_requests, 1);
    s_sbuf_free(&ctx->body);
    free(ctx->uri);
    free(ctx);
    *con_cls = NULL;
}

/* MHD connection callback: counts TCP connections so tests can see upstream closes. */
static void s_notify_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                                enum MHD_ConnectionNotificationCode toe)
{
    struct mock_server *srv = cls;
    (void)conn;
    (void)socket_context;
    if (toe == MHD_CONNECTION_NOTIFY_STARTED)
        atomic_fetch_add(&srv->conns_opened, 1);
    else if (toe == MHD_CONNECTION_NOTIFY_CLOSED)
        atomic_fetch_add(&srv->conns_closed, 1);
}

/*
 * Creates the listening socket ourselves so SO_REUSEADDR is explicit and the ephemeral port can
 * be read back with getsockname before announcing it.
 */
static int s_open_listener(const char *host, long port, long *bound_port)
{
    char service[16];
    struct addrinfo hints;
    struct addrinfo *res = NULL;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    if (snprintf(service, sizeof(service), "%ld", port) <= 0)
        return -1;
    int rc = getaddrinfo(host, service, &hints, &res);
    if (rc != 0) {
        fprintf(stderr, "mock_upstream: cannot resolve %s: %s\n", host, gai_strerror(rc));
        return -1;
    }
    int fd = -1;
    for (const struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol);
        if (fd < 0)
            continue;
        int one = 1;
        if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == 0 &&
            bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, SOMAXCONN) == 0)
            break;
        perror("mock_upstream: bind/listen");
        (void)close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0)
        return -1;

    struct sockaddr_storage ss;
    socklen_t slen = sizeof(ss);
    if (getsockname(fd, (struct sockaddr *)&ss, &slen) != 0) {
        perror("mock_upstream: getsockname");
        (void)close(fd);
        return -1;
    }
    if (ss.ss_family == AF_INET6)
        *bound_port = ntohs(((const struct sockaddr_in6 *)&ss)->sin6_port);
    else
        *bound_port = ntohs(((const struct sockaddr_in *)&ss)->sin_port);
    return fd;
}

static void s_print_usage(FILE *out)
{
    (void)fprintf(out, "usage: mock_upstream [--port N] [--host ADDR]\n"
                       "  --port N     TCP port to listen on (default 0 = ephemeral)\n"
                       "  --host ADDR  address to bind (default 127.0.0.1)\n"
                       "Prints \"listening on <port>\" when ready; SIGTERM/SIGINT stop it.\n");
}

/* Command line: returns 0 to run, 1 after --help, -1 on a usage error. */
static int s_parse_args(int argc, char **argv, long *port, const char **host)
{
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            s_print_usage(stdout);
            return 1;
        }
        const char *val = NULL;
        bool is_port = strncmp(arg, "--port", 6) == 0 && (arg[6] == '\0' || arg[6] == '=');
        bool is_host = strncmp(arg, "--host", 6) == 0 && (arg[6] == '\0' || arg[6] == '=');
        if (!is_port && !is_host) {
            fprintf(stderr, "mock_upstream: unknown argument '%s'\n", arg);
            return -1;
        }
        if (arg[6] == '=')
            val = arg + 7;
        else if (i + 1 < argc)
            val = argv[++i];
        if (!val || *val == '\0') {
            fprintf(stderr, "mock_upstream: %s needs a value\n", arg);
            return -1;
        }
        if (is_host) {
            *host = val;
        } else if (!s_parse_num(val, strlen(val), 0, 65535, port)) {
            fprintf(stderr, "mock_upstream: invalid port '%s'\n", val);
            return -1;
        }
    }
    return 0;
}

/*
 * Blocks SIGINT/SIGTERM before any thread exists (so only sigwait here sees them), serves until
 * one arrives, then stops the daemon and frees everything for a valgrind-clean exit.
 */
int main(int argc, char **argv)
{
    long port = 0;
    const char *host = "127.0.0.1";
    int rc = s_parse_args(argc, argv, &port, &host);
    if (rc != 0) {
        if (rc < 0)
            s_print_usage(stderr);
        return rc > 0 ? 0 : 2;
    }

    sigset_t set;
    struct sigaction ign;
    memset(&ign, 0, sizeof(ign));
    ign.sa_handler = SIG_IGN;
    if (sigemptyset(&set) != 0 || sigaddset(&set, SIGINT) != 0 || sigaddset(&set, SIGTERM) != 0 ||
        pthread_sigmask(SIG_BLOCK, &set, NULL) != 0 || sigemptyset(&ign.sa_mask) != 0 ||
        sigaction(SIGPIPE, &ign, NULL) != 0) {
        perror("mock_upstream: signals");
        return 1;
    }

    static struct mock_server srv;
    if (pthread_mutex_init(&srv.lock, NULL) != 0) {
        fprintf(stderr, "mock_upstream: mutex init failed\n");
        return 1;
    }
    atomic_init(&srv.stopping, false);
    atomic_init(&srv.next_seq, 0);
    atomic_init(&srv.conns_opened, 0);
    atomic_init(&srv.conns_closed, 0);
    atomic_init(&srv.active_requests, 0);
    srv.records = json_array();

    long bound_port = 0;
    int fd = srv.records ? s_open_listener(host, port, &bound_port) : -1;
    struct MHD_Daemon *daemon = NULL;
    if (fd >= 0) {
        daemon = MHD_start_daemon(
            MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_POLL |
                MHD_USE_ERROR_LOG,
            0, NULL, NULL, s_handle_access, &srv, MHD_OPTION_LISTEN_SOCKET, (MHD_socket)fd,
            MHD_OPTION_CONNECTION_TIMEOUT, MOCK_TIMEOUT_S, MHD_OPTION_CONNECTION_LIMIT,
            (unsigned int)10000, MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)256 * 1024,
            MHD_OPTION_URI_LOG_CALLBACK, s_log_uri, &srv, MHD_OPTION_NOTIFY_COMPLETED,
            s_complete_request, &srv, MHD_OPTION_NOTIFY_CONNECTION, s_notify_connection, &srv,
            MHD_OPTION_END);
        if (!daemon) {
            fprintf(stderr, "mock_upstream: MHD_start_daemon failed\n");
            (void)close(fd);
        }
    }
    int status = 1;
    if (daemon) {
        status = 0;
        if (printf("listening on %ld\n", bound_port) < 0 || fflush(stdout) != 0) {
            perror("mock_upstream: stdout");
            status = 1;
        }
        while (status == 0) {
            int sig = 0;
            int err = sigwait(&set, &sig);
            if (err != 0) {
                fprintf(stderr, "mock_upstream: sigwait: %s\n", strerror(err));
                status = 1;
            } else if (sig == SIGINT || sig == SIGTERM) {
                break;
            }
        }
        atomic_store(&srv.stopping, true);
        MHD_stop_daemon(daemon);
    }
    json_decref(srv.records);
    (void)pthread_mutex_destroy(&srv.lock);
    return status;
}
