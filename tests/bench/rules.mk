# tests/bench/rules.mk: `make bench` (included by the top-level Makefile).
#
#   make bench            every scenario, ours and the alternatives, alternating;
#                         prints the table and writes docs/benchmarks.md (< 5 min)
#   make bench QUICK=1    fewer and shorter runs (< 1 min)
#   make loadgen          just the load generator: build/<variant>/bin/loadgen
#
# iperf3 and gnuplot are needed only here, so they are checked (and installed
# the way common/check-deps.sh does) by tests/bench/check-deps.sh, not by `make`.

LOADGEN := $(BUILD)/bin/loadgen

$(LOADGEN): $(BUILD)/tests/bench/loadgen.o $(COMMON_OBJS) $(FLAGS_FILE)
	@mkdir -p $(dir $@)
	$(CXX) -o $@ $(filter %.o,$^) $(LDFLAGS) $(SSL_LIBS)

.PHONY: bench loadgen
loadgen: $(LOADGEN)

bench: all $(LOADGEN)
	@$(REPO_ROOT)/tests/bench/check-deps.sh
	@QUICK="$(QUICK)" LOADGEN="$(LOADGEN)" $(REPO_ROOT)/tests/bench/run.sh
