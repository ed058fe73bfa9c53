/* wk_messages: Anthropic's Messages API (/v1/messages) as a client dialect. To an anthropic/
 * deployment the request goes as it came (wk_anthropic's passthrough); to any other provider
 * it is turned into the OpenAI chat request the adapters take, and the answer (or the
 * stream of chat.completion.chunk events) back into Anthropic's message (or its event
 * sequence: message_start, content_block_start/delta/stop, message_delta, message_stop). */
#ifndef WK_MESSAGES_H
#define WK_MESSAGES_H

#include <jansson.h>
#include <stdbool.h>

#include "lp_buf.h"
#include "lp_sse.h"
#include "wk_adapter.h"

/* An Anthropic Messages request as an OpenAI chat request (new reference), or NULL with a
 * 400 in fail for a shape the translation cannot carry. */
json_t *wk_messages_to_chat(const json_t *req, wk_fail_t *fail);
/* An OpenAI chat completion as an Anthropic message (new reference). */
json_t *wk_messages_from_chat(const json_t *resp);
/* Input tokens of an Anthropic request, estimated from its text (count_tokens). */
long long wk_messages_estimate(const json_t *req);

/* A chat.completion.chunk stream being re-told as Anthropic events. */
typedef struct wk_messages_stream {
    lp_sse_t sse;
    bool started;   /* message_start went out */
    bool stopped;   /* message_stop went out */
    int block;      /* index of the open content block (when open != 0) */
    int next_block; /* index the next block gets */
    char open;      /* the open block: 't' text, 'k' thinking, 'u' tool_use, 0 none */
    int tool_index; /* OpenAI index of the open tool call */
    char stop_reason[32];
    long long input_tokens, output_tokens;
} wk_messages_stream_t;

/* Translate the chunk bytes in `in` (consumed) into Anthropic events appended to out;
 * *st is created on first use. */
void wk_messages_stream(wk_messages_stream_t **st, lp_buf_t *in, lp_buf_t *out);
/* An Anthropic error event for a stream that cannot go on. */
void wk_messages_error_event(lp_buf_t *out, int status, const char *message);
/* Free; NULL-safe, nulls the pointer. */
void wk_messages_stream_destroy(wk_messages_stream_t **st_p);

#endif
