# proto/: libproto.a, the wire format codec.
PROTO_SRC := $(wildcard proto/*.c)
PROTO_OBJ := $(call objs,$(PROTO_SRC))
PROTO_LIB := $(BUILD)/libproto.a
$(PROTO_LIB): $(PROTO_OBJ)
	@mkdir -p $(dir $@)
	$(Q)rm -f $@ && $(AR) rcs $@ $^
