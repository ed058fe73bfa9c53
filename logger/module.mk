# logger/: liblogger.a (everything but main.c, so tests link the same code) and llm-logger.
# The schema files in logger/sql/ are compiled in (lg_schema.c), so the binary carries them.
LG_SQL := $(sort $(wildcard logger/sql/*.sql))
LG_SCHEMA_C := $(BUILD)/logger/lg_schema.c
LG_SRC := $(filter-out logger/main.c,$(wildcard logger/*.c))
LG_OBJ := $(call objs,$(LG_SRC)) $(BUILD)/logger/lg_schema.o
LG_LIB := $(BUILD)/liblogger.a
LG_LIBS := $(call pkg_libs,libpq $(PKGS_COMMON))
$(LG_OBJ) $(BUILD)/logger/main.o: MOD_INC := -Ilogger
$(LG_SCHEMA_C): $(LG_SQL) logger/schema.sh
	@mkdir -p $(dir $@)
	$(Q)logger/schema.sh $(LG_SQL) > $@
$(BUILD)/logger/lg_schema.o: $(LG_SCHEMA_C)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(CFLAGS) $(INC_BASE) -Ilogger -c $< -o $@
$(LG_LIB): $(LG_OBJ)
	@mkdir -p $(dir $@)
	$(Q)rm -f $@ && $(AR) rcs $@ $^
$(BIN)/llm-logger: $(BUILD)/logger/main.o $(LG_LIB) $(PROTO_LIB) $(COMMON_LIB)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  LINK    $@")
	$(Q)$(CC) $(LDFLAGS) $^ -o $@ $(LG_LIBS) $(SYS_LIBS)
ALL_BINS += $(BIN)/llm-logger
