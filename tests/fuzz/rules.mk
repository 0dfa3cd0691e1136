# tests/fuzz/rules.mk: `make fuzz` — libFuzzer on the chat input path.
#
#   make fuzz                   each target for FUZZ_SECONDS (default 60)
#   make fuzz FUZZ_SECONDS=10   the short pass .ci/run makes
#   make fuzz FUZZ_TARGETS=framer
#
# Targets (tests/fuzz/targets.hpp): framer (common::LineFramer against a
# model), commands (the chat command parser, three clients) and room (a
# client's whole input path through chat::Room, up to 8 clients). Built with
# clang's -fsanitize=fuzzer,address,undefined into build/fuzz/. Seeds are
# under tests/fuzz/seeds/<target>/; what the fuzzer learns goes to
# build/fuzz/corpus/<target>/, crashes to build/fuzz/crashes/. A crash file
# copied to tests/fuzz/regressions/<target>/ is replayed by the robustness
# suite (tests/robustness/test_fuzz_replay.cpp) from then on.
FUZZ_CXX ?= clang++
FUZZ_SECONDS ?= 60
FUZZ_TARGETS ?= framer commands room
FUZZ_BUILD := $(REPO_ROOT)/build/fuzz
FUZZ_FLAGS := -std=c++20 -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
              -fno-omit-frame-pointer $(WARNINGS) -D_GNU_SOURCE
FUZZ_SRCS := $(REPO_ROOT)/tests/fuzz/targets.cpp $(REPO_ROOT)/common/text.cpp \
             $(REPO_ROOT)/step2_multiclient/chat.cpp
FUZZ_HDRS := $(REPO_ROOT)/tests/fuzz/targets.hpp $(REPO_ROOT)/common/text.hpp \
             $(REPO_ROOT)/step2_multiclient/chat.hpp
# Inputs of more than 4096 bytes reach the line limit without the flood op.
FUZZ_MAX_LEN := 12000

.PHONY: fuzz fuzz-build
fuzz-build: $(addprefix $(FUZZ_BUILD)/fuzz_,$(FUZZ_TARGETS))

$(FUZZ_BUILD)/fuzz_%: $(REPO_ROOT)/tests/fuzz/fuzz_%.cpp $(FUZZ_SRCS) $(FUZZ_HDRS)
	@command -v $(FUZZ_CXX) >/dev/null || { echo "make fuzz needs clang (apt-get install clang)"; exit 1; }
	@mkdir -p $(dir $@)
	$(FUZZ_CXX) $(FUZZ_FLAGS) -o $@ $< $(FUZZ_SRCS)

fuzz: fuzz-build
	@set -e; for t in $(FUZZ_TARGETS); do \
	    mkdir -p $(FUZZ_BUILD)/corpus/$$t $(FUZZ_BUILD)/crashes; \
	    echo "== fuzz $$t for $(FUZZ_SECONDS) s"; \
	    if ! $(FUZZ_BUILD)/fuzz_$$t -max_total_time=$(FUZZ_SECONDS) -max_len=$(FUZZ_MAX_LEN) \
	            -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
	            -artifact_prefix=$(FUZZ_BUILD)/crashes/$$t- \
	            $(FUZZ_BUILD)/corpus/$$t $(REPO_ROOT)/tests/fuzz/seeds/$$t \
	            >$(FUZZ_BUILD)/$$t.log 2>&1; then \
	        tail -60 $(FUZZ_BUILD)/$$t.log; \
	        echo "fuzz $$t: CRASH, input in $(FUZZ_BUILD)/crashes/ (copy it to tests/fuzz/regressions/$$t/)"; \
	        exit 1; \
	    fi; \
	    grep -E '^(stat::number_of_executed_units|stat::peak_rss_mb)|^Done' $(FUZZ_BUILD)/$$t.log | tr '\n' ' '; \
	    echo "corpus $$(ls $(FUZZ_BUILD)/corpus/$$t | wc -l) files"; \
	done; echo "fuzz: no crash in $(FUZZ_TARGETS)"
