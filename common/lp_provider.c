#include "lp_provider.h"

#include <string.h>

#include "lp_util.h"

static const lp_provider_t s_providers[] = {
    {"openai", LP_WIRE_OPENAI, "https://api.openai.com/v1", "OPENAI_API_KEY", "OPENAI_API_BASE",
     false},
    {"groq", LP_WIRE_OPENAI, "https://api.groq.com/openai/v1", "GROQ_API_KEY", "GROQ_API_BASE",
     true},
    {"openrouter", LP_WIRE_OPENAI, "https://openrouter.ai/api/v1", "OPENROUTER_API_KEY",
     "OPENROUTER_API_BASE", true},
    {"cerebras", LP_WIRE_OPENAI, "https://api.cerebras.ai/v1", "CEREBRAS_API_KEY",
     "CEREBRAS_API_BASE", true},
    {"anthropic", LP_WIRE_ANTHROPIC, "https://api.anthropic.com", "ANTHROPIC_API_KEY",
     "ANTHROPIC_API_BASE", true},
    {"gemini", LP_WIRE_GEMINI, "https://generativelanguage.googleapis.com", "GEMINI_API_KEY",
     "GEMINI_API_BASE", true},
    {"voyage", LP_WIRE_VOYAGE, "https://api.voyageai.com/v1", "VOYAGE_API_KEY", "VOYAGE_API_BASE",
     true},
    {"huggingface", LP_WIRE_TEI, NULL, "HUGGINGFACE_API_KEY", "HUGGINGFACE_API_BASE", false},
};

const lp_provider_t *lp_provider_by_name(const char *name)
{
    for (size_t i = 0; i < LP_ARRAY_LEN(s_providers); i++) {
        if (strcmp(s_providers[i].name, name) == 0)
            return &s_providers[i];
    }
    return NULL;
}

const lp_provider_t *lp_provider_for_model(const char *model, const char **rest)
{
    const char *slash = strchr(model, '/');
    if (slash) {
        for (size_t i = 0; i < LP_ARRAY_LEN(s_providers); i++) {
            size_t n = strlen(s_providers[i].name);
            if ((size_t)(slash - model) == n && strncmp(model, s_providers[i].name, n) == 0) {
                *rest = slash + 1;
                return **rest ? &s_providers[i] : NULL;
            }
        }
    }
    /* LiteLLM infers the provider of a few bare model names. */
    static const char *openai_bare[] = {"gpt-", "o1", "o3", "o4", "chatgpt-", "text-embedding-"};
    for (size_t i = 0; i < LP_ARRAY_LEN(openai_bare); i++) {
        if (lp_str_prefix(model, openai_bare[i]) && !slash) {
            *rest = model;
            return &s_providers[0];
        }
    }
    if (lp_str_prefix(model, "claude-") && !slash) {
        *rest = model;
        return lp_provider_by_name("anthropic");
    }
    return NULL;
}

const char *lp_provider_names(void)
{
    return "openai/, groq/, openrouter/, cerebras/, anthropic/, gemini/, voyage/, huggingface/";
}
