# common/: libcommon.a, shared by every daemon (no daemon knowledge in here).
COMMON_SRC := $(wildcard common/*.c)
COMMON_OBJ := $(call objs,$(COMMON_SRC))
COMMON_LIB := $(BUILD)/libcommon.a
$(COMMON_LIB): $(COMMON_OBJ)
	@mkdir -p $(dir $@)
	$(Q)rm -f $@ && $(AR) rcs $@ $^
