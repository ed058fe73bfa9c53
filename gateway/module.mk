# gateway/: libgateway.a (everything but main.c, so tests link the same code) and llm-gateway.
GW_SRC := $(filter-out gateway/main.c,$(wildcard gateway/*.c))
GW_OBJ := $(call objs,$(GW_SRC))
GW_LIB := $(BUILD)/libgateway.a
GW_LIBS := $(call pkg_libs,libmicrohttpd libcurl hiredis $(PKGS_COMMON))
$(GW_OBJ) $(BUILD)/gateway/main.o: MOD_INC := -Igateway
$(GW_LIB): $(GW_OBJ)
	@mkdir -p $(dir $@)
	$(Q)rm -f $@ && $(AR) rcs $@ $^
$(BIN)/llm-gateway: $(BUILD)/gateway/main.o $(GW_LIB) $(PROTO_LIB) $(COMMON_LIB)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  LINK    $@")
	$(Q)$(CC) $(LDFLAGS) $^ -o $@ $(GW_LIBS) $(SYS_LIBS)
ALL_BINS += $(BIN)/llm-gateway
