# Linux socket programming in C++, in three stages.
#
#   make step1 && ./server     build a stage; ./server and ./client point at it
#   make test                  every test, ending with "N passed, M failed"
#   make help                  everything else
# Compile in parallel by default, one job per core (an explicit -jN wins).
ifeq ($(filter -j%,$(MAKEFLAGS)),)
MAKEFLAGS += -j$(shell nproc)
endif
include common/build.mk
include tests/tests.mk
.SECONDEXPANSION:
# Further rules each area of tests/ brings (bench, fuzz, soak, capture ...).
-include $(wildcard tests/*/rules.mk)

STAGE_step1 := step1_echo
STAGE_step2 := step2_multiclient
STAGE_step3 := step3_tls
# The stages that exist in this checkout.
STAGES := $(foreach s,step1 step2 step3,$(if $(wildcard $(STAGE_$(s))/Makefile),$(s)))

# Which suites `make test-stepN` runs.
SUITES_step1 := $(filter unit step1,$(ALL_SUITES))
SUITES_step2 := $(filter step2 step2epoll,$(ALL_SUITES))
SUITES_step3 := $(filter step3,$(ALL_SUITES))

.PHONY: all help test clean certs $(STAGES) $(addprefix build-,$(STAGES)) $(addprefix test-,$(STAGES)) \
        $(addprefix test-,$(ALL_SUITES))

all: $(addprefix build-,$(STAGES))

# Objects more than one stage links (common/, stage 2's chat and relay core)
# are built here first, so that under -j two stages' makes never compile the
# same file.
SHARED_OBJS := $(COMMON_OBJS) $(if $(filter step2,$(STAGES)),$(BUILD)/step2_multiclient/chat.o \
               $(BUILD)/step2_multiclient/relay.o $(BUILD)/step2_multiclient/listener.o)

# Build one stage, inside its own directory.
$(addprefix build-,$(STAGES)): build-%: $(SHARED_OBJS) | deps
	@$(MAKE) --no-print-directory -C $(STAGE_$*)

# `make step1`: build it and point ./server and ./client (and ./server_fork
# and ./server_epoll where the stage has them) at its binaries.
$(STAGES): %: build-%
	@for p in server client server_fork server_epoll; do \
	    if [ -x $(STAGE_$*)/$$p ]; then ln -sfn $(STAGE_$*)/$$p $$p; else rm -f $$p; fi; \
	done
	@echo "./server and ./client are now $(STAGE_$*)'s"

# Tests: build what they run, then run the suites.
test: all $(call suite_bins,$(ALL_SUITES))
	@$(call run_suites,$(ALL_SUITES))

$(addprefix test-,$(STAGES)): test-%: build-% $$(call suite_bins,$$(SUITES_$$*))
	@$(call run_suites,$(SUITES_$*))

# Any one suite by name: make test-unit, make test-docs ...
$(addprefix test-,$(filter-out $(STAGES),$(ALL_SUITES))): test-%: all $(BUILD)/bin/test-%
	@$(call run_suites,$*)

# Stage 3's key material (step3_tls/make-certs.sh), made once.
certs:
	@$(MAKE) --no-print-directory -C $(STAGE_step3) certs

clean:
	rm -rf build server client server_fork server_epoll
	@for s in $(STAGES); do $(MAKE) --no-print-directory -C $(STAGE_$$s) clean; done

help:
	@echo "make step1|step2|step3   build a stage; ./server and ./client then run it"
	@echo "make / make all          build every stage"
	@echo "make test                every test suite ($(ALL_SUITES)); last line: N passed, M failed"
	@echo "make test-step1 ...      one stage's tests (also: $(addprefix test-,$(ALL_SUITES)))"
	@echo "make SANITIZE=1 test     the same under AddressSanitizer + UBSan"
	@echo "make CXX=clang++ ...     build with clang instead of g++"
	@echo "make certs               stage 3 key material under step3_tls/certs/"
	@echo "make bench               the benchmark table (docs/benchmarks.md)"
	@echo "make loadgen             just the load generator, build/<variant>/bin/loadgen (docs/tcp-on-the-wire.md)"
	@echo "make test-diagrams       parse every Mermaid diagram in the docs with mermaid (npm install, ~170 MB)"
	@echo "make fuzz | soak | capture STAGE=N   see tests/ and docs/ (capture writes build/captures/; UPDATE=1: docs/captures/)"
	@echo "make exercise STAGE=N    build it yourself: stage N with its lesson cut out, as TODOs"
	@echo "make grade STAGE=N       grade your exercise with the project's tests (SERVER=PATH"
	@echo "                         [CLIENT=PATH]: grade any implementation, in any language)"
	@echo "make mutate STAGE=N      seed bugs into the reference: does the grader catch them?"
	@echo "make grade-check         the reference passes, exercises fail first, bugs are caught"
	@echo "make format              clang-format every source file"

format:
	clang-format -i $$(git ls-files '*.cpp' '*.hpp')
