# llm-proxy: one non-recursive Makefile; each directory adds itself through module.mk.
#
#   make            build everything into build/
#   make run        install what is missing, build, start the whole stack (see README)
#   make test       install what is missing, build (plain and ASan+UBSan), run every test
#   make unit       unit tests only (fast loop)
#   make format     clang-format the tree;  make format-check / make lint for CI
#
# SANITIZE=1 builds into build-asan/ with -fsanitize=address,undefined.

SHELL := /bin/bash
.DELETE_ON_ERROR:
.DEFAULT_GOAL := all

ifeq ($(SANITIZE),1)
BUILD ?= build-asan
SAN_FLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
OPT := -O1
else
BUILD ?= build
SAN_FLAGS :=
OPT := -O2
endif

WERROR ?= 1
CC ?= cc
WARN := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wpointer-arith \
        -Wformat=2 -Wundef -Wvla -fno-common
ifeq ($(WERROR),1)
WARN += -Werror
endif

PKGS_COMMON := libzmq jansson yaml-0.1 libcrypto msgpack yajl
SYS_LIBS := -lm
pkg_cflags = $(shell pkg-config --cflags $(1) 2>/dev/null)
pkg_libs = $(shell pkg-config --libs $(1) 2>/dev/null)

CFLAGS := -std=c11 -D_GNU_SOURCE -g $(OPT) $(WARN) $(SAN_FLAGS) -MMD -MP \
          $(call pkg_cflags,$(PKGS_COMMON) libmicrohttpd libcurl hiredis libpq)
LDFLAGS := $(SAN_FLAGS)
INC_BASE := -Icommon -Iproto

BIN := $(BUILD)/bin
ALL_BINS :=
ALL_OBJS :=

# $(call objs,<sources>) -> object paths under $(BUILD)
objs = $(patsubst %.c,$(BUILD)/%.o,$(1))

# V=1 shows the full compiler lines.
ifeq ($(V),1)
Q :=
else
Q := @
endif

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(CFLAGS) $(INC_BASE) $(MOD_INC) -c $< -o $@

include common/module.mk proto/module.mk router/module.mk workers/module.mk \
        gateway/module.mk logger/module.mk tests/module.mk tests/fuzz/module.mk

.PHONY: all run test unit check deps format format-check lint clean bench
all: $(ALL_BINS)

deps:
	@scripts/deps.sh

run: deps
	@$(MAKE) --no-print-directory all
	@scripts/run.sh

# The README's test command: deps, both builds, every test, one closing tally.
test:
	@scripts/deps.sh test
	@$(MAKE) --no-print-directory all
	@$(MAKE) --no-print-directory SANITIZE=1 all
	@tests/run.sh build build-asan

check: all
	@tests/run.sh $(BUILD)

unit: all
	@tests/run.sh --unit-only $(BUILD)

SOURCES := $(shell git ls-files '*.c' '*.h' 2>/dev/null || find . -name '*.[ch]' -not -path './build*')
format:
	clang-format -i $(SOURCES)

format-check:
	@clang-format --dry-run --Werror $(SOURCES)

# Banned functions and self-contained headers.
lint:
	@! grep -nE '\b(strcpy|strcat|sprintf|vsprintf|gets|atoi|strtok)\s*\(' $(SOURCES) \
	    || { echo "lint: banned function above"; exit 1; }
	@for h in common/*.h proto/*.h gateway/*.h router/*.h workers/*.h logger/*.h; do \
	    [ -f "$$h" ] || continue; \
	    echo "#include \"$$(basename $$h)\"" | $(CC) $(filter-out -MMD -MP,$(CFLAGS)) \
	        $(INC_BASE) -I$$(dirname $$h) -x c -fsyntax-only - \
	        || { echo "lint: $$h is not self-contained"; exit 1; }; \
	done
	@echo "lint: ok"

# The figures of issue 10 against the mock, written to docs/BENCHMARKS.md (a few minutes).
BENCH_BIN := $(BIN)/lp_bench
$(BENCH_BIN): tests/bench/lp_bench.c
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(CFLAGS) $< -o $@
bench: all $(BENCH_BIN)
	@python3 tests/bench/bench.py --build $(BUILD)

# Issue 11 (tests/reliability/): the integration suite on the ASan+UBSan build; the long fault
# scenarios and valgrind, written to docs/RELIABILITY.md; a soak of minutes (SOAK_SECONDS).
.PHONY: test-asan reliability soak
test-asan:
	@scripts/deps.sh test
	@$(MAKE) --no-print-directory SANITIZE=1 all
	@tests/run.sh build-asan
reliability:
	@scripts/deps.sh reliability
	@$(MAKE) --no-print-directory all
	@python3 tests/reliability/reliability.py --build $(BUILD)
soak:
	@scripts/deps.sh reliability
	@$(MAKE) --no-print-directory all
	@python3 tests/reliability/soak.py --build $(BUILD)

clean:
	rm -rf build build-asan

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
