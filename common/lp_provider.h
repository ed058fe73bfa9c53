/* lp_provider: the table of providers the proxy knows, keyed by LiteLLM's model prefix
 * ("openai/", "anthropic/", ...): default base URL, the environment variables holding the
 * key and base, and which wire format (adapter) speaks to it. Read-only data. */
#ifndef LP_PROVIDER_H
#define LP_PROVIDER_H

#include <stdbool.h>

typedef enum {
    LP_WIRE_OPENAI,    /* OpenAI chat/completions/embeddings, Bearer auth */
    LP_WIRE_ANTHROPIC, /* Anthropic Messages API */
    LP_WIRE_GEMINI,    /* Google AI Studio generateContent / embedContent */
    LP_WIRE_VOYAGE,    /* Voyage embeddings (OpenAI-like) */
    LP_WIRE_TEI,       /* HuggingFace text-embeddings-inference */
} lp_wire_t;

typedef struct {
    const char *name;         /* prefix without the slash, as LiteLLM spells it */
    lp_wire_t wire;           /* adapter that speaks to it */
    const char *default_base; /* NULL when api_base is required */
    const char *key_env;      /* environment variable with the API key, or NULL */
    const char *base_env;     /* environment variable overriding the base URL, or NULL */
    bool key_required;        /* a request without a key is refused before calling out */
} lp_provider_t;

/* Provider for a model string "prefix/name"; sets *rest to the provider's model name.
 * Bare names LiteLLM infers (gpt-*, o1*, text-embedding-*, claude-*) map to openai or
 * anthropic. NULL when the prefix is unknown. */
const lp_provider_t *lp_provider_for_model(const char *model, const char **rest);
/* Provider by name; NULL if unknown. */
const lp_provider_t *lp_provider_by_name(const char *name);
/* Comma-separated list of known prefixes, for error messages. */
const char *lp_provider_names(void);

#endif
