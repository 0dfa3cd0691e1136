# tests/bench/rules.mk: `make bench` (included by the top-level Makefile).
#
#   make bench            every scenario, ours and the alternatives, alternating;
#                         prints the tables and writes docs/benchmarks.md (867-935 s on
#                         a busy 2-core machine)
#   make bench QUICK=1    fewer and shorter runs (132-143 s there)
#   make loadgen          just the load generator: build/<variant>/bin/loadgen
#
# iperf3, gnuplot and the servers compared (redis-server, nats-server, ngircd)
# are needed only here, so `make` leaves them alone; bench
# installs them through common/check-deps.sh --optional, or says how and runs
# without them (that row or the plot is then left out).

LOADGEN := $(BUILD)/bin/loadgen

$(LOADGEN): $(BUILD)/tests/bench/loadgen.o $(COMMON_OBJS) $(FLAGS_FILE)
	@mkdir -p $(dir $@)
	$(CXX) -o $@ $(filter %.o,$^) $(LDFLAGS) $(SSL_LIBS)

.PHONY: bench loadgen
loadgen: $(LOADGEN)

bench: all $(LOADGEN)
	@$(REPO_ROOT)/common/check-deps.sh --optional iperf3=iperf3 gnuplot=gnuplot-nox socat=socat \
	    ncat=ncat redis-server=redis-server nats-server=nats-server ngircd=ngircd
	@QUICK="$(QUICK)" LOADGEN="$(LOADGEN)" $(REPO_ROOT)/tests/bench/run.sh
