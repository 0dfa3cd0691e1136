# tests/soak/rules.mk: `make soak` — the chaos soak (tests/soak/soak.cpp).
#
#   make soak                    two minutes (SOAK_SECONDS=120)
#   make soak SOAK_SECONDS=60    what .ci/run does
#   make SANITIZE=1 soak         the same servers under ASan/UBSan: leaks are
#                                then found by LeakSanitizer at their exit
#
# It starts the stage 2 select relay and the stage 3 TLS relay, well-behaved
# clients that check every line arrives exactly once and in order, and
# hostile clients of every kind at once, then prints a report and fails
# unless every invariant held. SOAK_SEED=N repeats a run's random choices.
SOAK_SECONDS ?= 120
SOAK_OBJS := $(BUILD)/tests/soak/soak.o

$(BUILD)/bin/soak: $(SOAK_OBJS) $(TEST_SUPPORT_OBJS) $(COMMON_OBJS) $(FLAGS_FILE)
	@mkdir -p $(dir $@)
	$(CXX) -o $@ $(filter %.o,$^) $(LDFLAGS) $(SSL_LIBS) -pthread

.PHONY: soak
# One stage after the other: both link step2_multiclient/chat.o, and two
# sub-makes building it at once under -j2 can link a half-written object.
soak: $(BUILD)/bin/soak
	@$(MAKE) --no-print-directory build-step2
	@$(MAKE) --no-print-directory build-step3
	@SOAK_SECONDS=$(SOAK_SECONDS) TEST_TIMEOUT=$$(( $(SOAK_SECONDS) + 240 )) $(BUILD)/bin/soak
