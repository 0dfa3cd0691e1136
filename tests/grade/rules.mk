# tests/grade/rules.mk: build the stages yourself, and grade any implementation.
#
#   make exercise STAGE=N          the stage with its lesson cut out, in stepN_*/exercise/
#   make grade STAGE=N             grade that exercise with the project's own tests
#   make grade STAGE=N SERVER=PATH [CLIENT=PATH] [SERVER_FORK=PATH]   grade any programs
#   make mutate STAGE=N            seed bugs into a copy of the reference: caught K of K
#   make grade-check               the reference passes, the exercise fails first, Python
#                                  passes stage 1, every seeded bug is caught
GRADE_DIR_1 := step1_echo
GRADE_DIR_2 := step2_multiclient
GRADE_DIR_3 := step3_tls
GRADE_SUITES_1 := step1
GRADE_SUITES_2 := step2 spec
GRADE_SUITES_3 := step3
GRADE_DIR = $(GRADE_DIR_$(STAGE))
# The programs each stage's exercise builds (and SERVER=, CLIENT= ... stand for).
GRADE_ROLES_1 := server client
GRADE_ROLES_2 := server_fork server client
GRADE_ROLES_3 := server client
GRADE_SERVER_FORK = $(SERVER_FORK)
GRADE_SERVER = $(SERVER)
GRADE_CLIENT = $(CLIENT)
# Given SERVER (or any program), only what is given is graded; else the exercise.
GRADE_GIVEN := $(strip $(SERVER)$(CLIENT)$(SERVER_FORK))
grade_programs = $(if $(GRADE_GIVEN),\
    $(foreach r,$(GRADE_ROLES_$(STAGE)),$(r)=$(GRADE_$(shell echo $(r) | tr a-z A-Z))),\
    $(foreach r,$(GRADE_ROLES_$(STAGE)),\
        $(if $(wildcard $(GRADE_DIR)/exercise/$(r).cpp),$(r)=$(GRADE_DIR)/exercise/$(r))))
GRADE_OBJS := $(COMMON_OBJS) $(BUILD)/step2_multiclient/chat.o $(BUILD)/step2_multiclient/listener.o \
              $(BUILD)/step3_tls/tls.o

.PHONY: exercise grade mutate grade-check
grade_need_stage = @test -n "$(GRADE_DIR)" || { echo "usage: make $@ STAGE=1|2|3" >&2; exit 2; }
# The stage Makefiles have a STAGE of their own (their directory), and a STAGE=N
# on the command line would reach them: pass theirs back (as make capture does).
grade_certs = $(if $(filter 3,$(STAGE)),@test -f $(GRADE_DIR_3)/certs/ca.crt || \
    $(MAKE) --no-print-directory -C $(GRADE_DIR_3) certs STAGE=$(GRADE_DIR_3))
grade_build_stages = +@for d in $(GRADE_DIR_1) $(GRADE_DIR_2) $(GRADE_DIR_3); do \
    $(MAKE) --no-print-directory -C $$d STAGE=$$d || exit 2; done

exercise: $(GRADE_OBJS)
	$(grade_need_stage)
	@python3 $(REPO_ROOT)/tests/grade/exercise.py $(GRADE_DIR)
	@$(MAKE) --no-print-directory -C $(GRADE_DIR)/exercise STAGE=$(GRADE_DIR)
	@echo "Now fill in the TODOs in $(GRADE_DIR)/exercise/ (docs say how), and run make grade STAGE=$(STAGE)"

grade: $(GRADE_OBJS) $(call suite_bins,$(GRADE_SUITES_$(STAGE)))
	$(grade_need_stage)
	$(grade_build_stages)
	$(grade_certs)
	@if [ -z "$(GRADE_GIVEN)" ]; then \
	    test -f $(GRADE_DIR)/exercise/Makefile || { echo "no exercise yet: make exercise STAGE=$(STAGE)" >&2; exit 2; }; \
	    $(MAKE) --no-print-directory -C $(GRADE_DIR)/exercise STAGE=$(GRADE_DIR) >/dev/null || exit 2; \
	fi
	@python3 $(REPO_ROOT)/tests/grade/grade.py --stage $(STAGE) --build $(BUILD) $(grade_programs)

mutate: $(GRADE_OBJS) $(call suite_bins,$(GRADE_SUITES_$(STAGE)))
	$(grade_need_stage)
	$(grade_build_stages)
	$(grade_certs)
	@CXX="$(CXX)" CXXFLAGS="$(CXXFLAGS)" LDFLAGS="$(LDFLAGS)" \
	    python3 $(REPO_ROOT)/tests/grade/mutate.py --stage $(STAGE) --build $(BUILD)

grade-check: $(GRADE_OBJS) $(call suite_bins,$(sort $(GRADE_SUITES_1) $(GRADE_SUITES_2) $(GRADE_SUITES_3)))
	$(grade_build_stages)
	@test -f $(GRADE_DIR_3)/certs/ca.crt || $(MAKE) --no-print-directory -C $(GRADE_DIR_3) certs STAGE=$(GRADE_DIR_3)
	@CXX="$(CXX)" CXXFLAGS="$(CXXFLAGS)" LDFLAGS="$(LDFLAGS)" \
	    $(REPO_ROOT)/tests/grade/check.sh $(BUILD)
