# tests/: unit test binaries (one per module, linking the same libraries as the daemons) and
# the mock provider used by integration tests and benchmarks.
UNIT_SRC := $(wildcard tests/unit/test_*.c)
UNIT_BINS := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(UNIT_SRC))
DAEMON_LIBS := $(GW_LIB) $(RT_LIB) $(WK_LIB) $(LG_LIB)
ALL_PKG_LIBS := $(call pkg_libs,libmicrohttpd libcurl libpq hiredis $(PKGS_COMMON))
$(call objs,$(UNIT_SRC)): MOD_INC := -Itests/unit -Igateway -Irouter -Iworkers -Ilogger
$(BUILD)/tests/%: $(BUILD)/tests/unit/%.o $(DAEMON_LIBS) $(PROTO_LIB) $(COMMON_LIB)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  LINK    $@")
	$(Q)$(CC) $(LDFLAGS) $^ -o $@ $(ALL_PKG_LIBS) $(SYS_LIBS)
ALL_BINS += $(UNIT_BINS)

MOCK_BIN := $(BIN)/mock_upstream
$(MOCK_BIN): $(BUILD)/tests/mock/mock_upstream.o
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  LINK    $@")
	$(Q)$(CC) $(LDFLAGS) $^ -o $@ $(call pkg_libs,libmicrohttpd jansson) -lpthread
ifneq ($(wildcard tests/mock/mock_upstream.c),)
ALL_BINS += $(MOCK_BIN)
endif
