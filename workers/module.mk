# workers/: libworkers.a (everything but main.c, so tests link the same code) and llm-worker.
WK_SRC := $(filter-out workers/main.c,$(wildcard workers/*.c))
WK_OBJ := $(call objs,$(WK_SRC))
WK_LIB := $(BUILD)/libworkers.a
WK_LIBS := $(call pkg_libs,libcurl $(PKGS_COMMON))
$(WK_OBJ) $(BUILD)/workers/main.o: MOD_INC := -Iworkers
$(WK_LIB): $(WK_OBJ)
	@mkdir -p $(dir $@)
	$(Q)rm -f $@ && $(AR) rcs $@ $^
$(BIN)/llm-worker: $(BUILD)/workers/main.o $(WK_LIB) $(PROTO_LIB) $(COMMON_LIB)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  LINK    $@")
	$(Q)$(CC) $(LDFLAGS) $^ -o $@ $(WK_LIBS) $(SYS_LIBS)
ALL_BINS += $(BIN)/llm-worker
