# router/: librouter.a (everything but main.c, so tests link the same code) and llm-router.
RT_SRC := $(filter-out router/main.c,$(wildcard router/*.c))
RT_OBJ := $(call objs,$(RT_SRC))
RT_LIB := $(BUILD)/librouter.a
RT_LIBS := $(call pkg_libs, $(PKGS_COMMON))
$(RT_OBJ) $(BUILD)/router/main.o: MOD_INC := -Irouter
$(RT_LIB): $(RT_OBJ)
	@mkdir -p $(dir $@)
	$(Q)rm -f $@ && $(AR) rcs $@ $^
$(BIN)/llm-router: $(BUILD)/router/main.o $(RT_LIB) $(PROTO_LIB) $(COMMON_LIB)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  LINK    $@")
	$(Q)$(CC) $(LDFLAGS) $^ -o $@ $(RT_LIBS) $(SYS_LIBS)
ALL_BINS += $(BIN)/llm-router
