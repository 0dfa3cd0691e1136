# tests/tests.mk: the doctest suites, included by the top-level Makefile.
#
# A suite is a directory tests/<suite>/ of *.cpp files, linked with the test
# harness (tests/support/) and common/ into build/<variant>/bin/test-<suite>.
# A suite that needs more objects adds them as prerequisites in its own
# tests/<suite>/rules.mk ($(BUILD)/bin/test-step2: $(BUILD)/step2_multiclient/chat.o),
# and libraries in SUITE_LIBS_<suite>.

TEST_SUPPORT_SRCS := $(wildcard $(REPO_ROOT)/tests/support/*.cpp)
TEST_SUPPORT_OBJS := $(patsubst $(REPO_ROOT)/%.cpp,$(BUILD)/%.o,$(TEST_SUPPORT_SRCS))
TEST_CPPFLAGS := -DREPO_ROOT='"$(REPO_ROOT)"' -I$(REPO_ROOT)/tests/support

# Suites whose directory exists, in the order `make test` runs them.
ALL_SUITES := $(foreach s,unit step1 step2 step2epoll step3 daemon explain docs robustness spec,\
                $(if $(wildcard $(REPO_ROOT)/tests/$(s)/*.cpp),$(s)))

suite_srcs = $(wildcard $(REPO_ROOT)/tests/$(1)/*.cpp)
suite_objs = $(patsubst $(REPO_ROOT)/%.cpp,$(BUILD)/%.o,$(call suite_srcs,$(1)))

$(BUILD)/tests/%.o: $(REPO_ROOT)/tests/%.cpp $(OBJ_FLAGS_FILE) | deps
	@mkdir -p $(dir $@)
	$(CXX) $(CPPFLAGS) $(TEST_CPPFLAGS) $(CXXFLAGS) -c $< -o $@

define SUITE_RULE
$(BUILD)/bin/test-$(1): $(call suite_objs,$(1)) $(TEST_SUPPORT_OBJS) $(COMMON_OBJS) $(FLAGS_FILE)
	@mkdir -p $$(dir $$@)
	$$(CXX) -o $$@ $$(filter %.o,$$^) $$(LDFLAGS) $$(SUITE_LIBS_$(1))
endef
$(foreach s,$(ALL_SUITES),$(eval $(call SUITE_RULE,$(s))))

suite_bins = $(foreach s,$(1),$(BUILD)/bin/test-$(s))
run_suites = $(REPO_ROOT)/tests/run-suites.sh $(BUILD) $(1)
