# tests/fuzz/: libFuzzer targets (clang), see tests/fuzz/README.md.
#
#   make fuzz-build                  build every target into $(BUILD)/fuzz/bin
#   make fuzz-smoke                  build, replay corpus + regressions, fuzz each target 3 s
#   make fuzz [FUZZ_SECONDS=60]      build, replay, fuzz each target FUZZ_SECONDS
#   make fuzz-corpus                 merge what `make fuzz` found into tests/fuzz/corpus/
#   FUZZ_ONLY="json sse"             restrict any of these to some targets
#   FUZZ_JOBS=2                      run that many targets at once
#
# Nothing here is part of `make all`: the project sources are compiled a second time with
# clang and -fsanitize=fuzzer-no-link,address,undefined into their own tree, $(BUILD)/fuzz/obj,
# only when one of the targets above is asked for.

FUZZ_CC ?= clang
FUZZ_SECONDS ?= 60
FUZZ_SMOKE_SECONDS := $(if $(filter command line environment,$(origin FUZZ_SECONDS)),$(FUZZ_SECONDS),3)
FUZZ_JOBS ?= 1
FUZZ_DIR := $(BUILD)/fuzz
FUZZ_OBJ := $(FUZZ_DIR)/obj
FUZZ_BIN := $(FUZZ_DIR)/bin

# Targets, and the longest input each is given while fuzzing (replays take any size).
FUZZ_ALL := json request yaml cfg sse msg openai_response openai_stream anthropic_response \
            anthropic_stream voyage_response tei_response url_guard spool
ifneq ($(wildcard workers/wk_gemini.c),)
FUZZ_ALL += gemini_response gemini_stream
endif
FUZZ_TARGETS := $(if $(FUZZ_ONLY),$(filter $(FUZZ_ONLY),$(FUZZ_ALL)),$(FUZZ_ALL))

FUZZ_MAXLEN_json := 16384
FUZZ_MAXLEN_request := 16384
FUZZ_MAXLEN_yaml := 8192
FUZZ_MAXLEN_cfg := 8192
FUZZ_MAXLEN_sse := 16384
FUZZ_MAXLEN_msg := 4096
FUZZ_MAXLEN_openai_response := 16384
FUZZ_MAXLEN_openai_stream := 32768
FUZZ_MAXLEN_anthropic_response := 16384
FUZZ_MAXLEN_anthropic_stream := 32768
FUZZ_MAXLEN_voyage_response := 16384
FUZZ_MAXLEN_tei_response := 16384
FUZZ_MAXLEN_gemini_response := 16384
FUZZ_MAXLEN_gemini_stream := 32768
FUZZ_MAXLEN_url_guard := 512
FUZZ_MAXLEN_spool := 16384

# Dictionaries (tests/fuzz/dict/): tokens libFuzzer splices into inputs.
FUZZ_DICT_json := json
FUZZ_DICT_request := json
FUZZ_DICT_yaml := yaml
FUZZ_DICT_cfg := yaml
FUZZ_DICT_sse := sse
FUZZ_DICT_openai_response := json
FUZZ_DICT_openai_stream := sse
FUZZ_DICT_anthropic_response := json
FUZZ_DICT_anthropic_stream := sse
FUZZ_DICT_voyage_response := json
FUZZ_DICT_tei_response := json
FUZZ_DICT_gemini_response := json
FUZZ_DICT_gemini_stream := sse
FUZZ_DICT_url_guard := url
FUZZ_DICT_spool := json

# fuzz_cfg: environment_variables in a config call setenv(); see fuzz_cfg.c.
FUZZ_LDEXTRA_cfg := -Wl,--wrap=setenv -Wl,--wrap=getenv

FUZZ_SAN := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
FUZZ_PKGS := $(PKGS_COMMON) libmicrohttpd libcurl libpq hiredis
FUZZ_CFLAGS := -std=c11 -D_GNU_SOURCE -g -O1 $(FUZZ_SAN) -fsanitize=fuzzer-no-link -MMD -MP \
               $(call pkg_cflags,$(FUZZ_PKGS))
FUZZ_INC := -Icommon -Iproto -Iworkers -Igateway -Ilogger -Itests/fuzz
# Project sources: the project's warnings, reported but not fatal (the gcc build owns -Werror
# there); the fuzz harness itself: warnings are errors.
FUZZ_WARN = $(filter-out -Werror,$(WARN))
$(FUZZ_OBJ)/tests/fuzz/%.o: FUZZ_WARN = $(filter-out -Werror,$(WARN)) -Werror
FUZZ_LDLIBS := $(call pkg_libs,$(FUZZ_PKGS)) $(SYS_LIBS)

# The project's modules as archives of clang-built objects; a target links only what it uses
# (only fuzz_request needs the gateway, only fuzz_spool the logger), so an edit in progress elsewhere does not stop it.
fuzz_objs = $(patsubst %.c,$(FUZZ_OBJ)/%.o,$(1))
FUZZ_LIB_common := $(FUZZ_DIR)/libcommon.a
FUZZ_LIB_proto := $(FUZZ_DIR)/libproto.a
FUZZ_LIB_workers := $(FUZZ_DIR)/libworkers.a
FUZZ_LIB_gateway := $(FUZZ_DIR)/libgateway.a
FUZZ_LIB_logger := $(FUZZ_DIR)/liblogger.a
$(FUZZ_LIB_common): $(call fuzz_objs,$(COMMON_SRC))
$(FUZZ_LIB_proto): $(call fuzz_objs,$(PROTO_SRC))
$(FUZZ_LIB_workers): $(call fuzz_objs,$(WK_SRC))
$(FUZZ_LIB_gateway): $(call fuzz_objs,$(GW_SRC))
$(FUZZ_LIB_logger): $(call fuzz_objs,$(LG_SRC) $(LG_SCHEMA_C))
FUZZ_BASE_LIBS := $(FUZZ_LIB_workers) $(FUZZ_LIB_proto) $(FUZZ_LIB_common)
FUZZ_LIBS_request := $(FUZZ_LIB_gateway)
FUZZ_LIBS_spool := $(FUZZ_LIB_logger)
FUZZ_COMMON_OBJ := $(FUZZ_OBJ)/tests/fuzz/fuzz_common.o
FUZZ_BINS := $(patsubst %,$(FUZZ_BIN)/fuzz_%,$(FUZZ_TARGETS))
# Keep the targets' objects (make would delete them as intermediate files of the pattern).
.SECONDARY: $(FUZZ_COMMON_OBJ) $(patsubst %,$(FUZZ_OBJ)/tests/fuzz/fuzz_%.o,$(FUZZ_ALL))

$(FUZZ_OBJ)/%.o: %.c | fuzz-cc
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  FUZZCC  $<")
	$(Q)$(FUZZ_CC) $(FUZZ_CFLAGS) $(FUZZ_WARN) $(FUZZ_INC) -c $< -o $@

$(FUZZ_DIR)/lib%.a:
	@mkdir -p $(dir $@)
	$(Q)rm -f $@ && $(AR) rcs $@ $^

# A target's own archives ($(FUZZ_LIBS_<name>)) link before the base ones.
$(FUZZ_BIN)/fuzz_request: $(FUZZ_LIBS_request)
$(FUZZ_BIN)/fuzz_spool: $(FUZZ_LIBS_spool)
$(FUZZ_BIN)/fuzz_%: $(FUZZ_OBJ)/tests/fuzz/fuzz_%.o $(FUZZ_COMMON_OBJ) $(FUZZ_BASE_LIBS)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  FUZZLD  $@")
	$(Q)$(FUZZ_CC) -fsanitize=fuzzer $(FUZZ_SAN) $(FUZZ_OBJ)/tests/fuzz/fuzz_$*.o \
	    $(FUZZ_COMMON_OBJ) $(FUZZ_LIBS_$*) $(FUZZ_BASE_LIBS) -o $@ $(FUZZ_LDLIBS) $(FUZZ_LDEXTRA_$*)

.PHONY: fuzz fuzz-smoke fuzz-build fuzz-corpus fuzz-cc
fuzz-cc:
	@command -v $(FUZZ_CC) >/dev/null || { echo "fuzz: $(FUZZ_CC) not found; install the Debian \
	packages clang and libclang-rt-14-dev (scripts/deps.sh)"; exit 1; }

fuzz-build: $(FUZZ_BINS)

# Each target as name:max_len:dict for the runner.
FUZZ_SPECS = $(foreach t,$(FUZZ_TARGETS),$(t):$(FUZZ_MAXLEN_$(t)):$(FUZZ_DICT_$(t)))

fuzz: fuzz-build
	@tests/fuzz/run.sh fuzz $(FUZZ_DIR) $(FUZZ_SECONDS) $(FUZZ_JOBS) $(FUZZ_SPECS)

fuzz-smoke: fuzz-build
	@tests/fuzz/run.sh smoke $(FUZZ_DIR) $(FUZZ_SMOKE_SECONDS) $(FUZZ_JOBS) $(FUZZ_SPECS)

fuzz-corpus: fuzz-build
	@tests/fuzz/run.sh merge $(FUZZ_DIR) 0 1 $(FUZZ_SPECS)
