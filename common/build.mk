# common/build.mk: compiler flags and rules shared by every stage's Makefile.
#
#   make                      g++, -O2, warnings are errors
#   make CXX=clang++          the same with clang
#   make SANITIZE=1           AddressSanitizer + UndefinedBehaviorSanitizer
#
# Objects go to build/<compiler>[-san]/, so switching compilers or sanitizers
# never mixes objects; the binaries in each stage directory are relinked when
# the variant changes (see FLAGS_FILE below).

.DEFAULT_GOAL := all
REPO_ROOT := $(abspath $(dir $(lastword $(MAKEFILE_LIST)))/..)

ifeq ($(origin CXX),default)
CXX := g++
endif
SANITIZE ?=
VARIANT := $(notdir $(firstword $(CXX)))$(if $(filter 1,$(SANITIZE)),-san)
BUILD := $(REPO_ROOT)/build/$(VARIANT)

WARNINGS := -Wall -Wextra -Wpedantic -Werror -Wshadow -Wnon-virtual-dtor -Wcast-align \
            -Woverloaded-virtual -Wformat=2
CXXFLAGS ?= -O2 -g
CXXFLAGS += -std=c++20 $(WARNINGS) -D_GNU_SOURCE
CPPFLAGS += -MMD -MP
LDFLAGS ?=
ifeq ($(SANITIZE),1)
# Not UBSan's vptr check: it probes memory through a pipe(), so in a process
# out of descriptors (EMFILE, which tests provoke on purpose) it reports
# "invalid vptr" for sound objects. The project has almost no virtual calls.
SAN_FLAGS := -fsanitize=address,undefined -fno-sanitize=vptr -fno-omit-frame-pointer \
             -fno-sanitize-recover=all
CXXFLAGS += $(SAN_FLAGS) -O1
# GCC's -Wmaybe-uninitialized misfires under ASan at -O1 (inside <regex> and
# <functional>); the sanitizer itself checks real uses of uninitialized memory.
ifeq ($(findstring clang,$(CXX)),)
CXXFLAGS += -Wno-maybe-uninitialized
endif
LDFLAGS += $(SAN_FLAGS)
endif
SSL_LIBS := -lssl -lcrypto

COMMON_SRCS := $(wildcard $(REPO_ROOT)/common/*.cpp)
COMMON_OBJS := $(patsubst $(REPO_ROOT)/%.cpp,$(BUILD)/%.o,$(COMMON_SRCS))

# A flags file changes only when the flags do. Objects depend on their
# variant's file, so each variant compiles once. The binaries in the stage
# directories are shared by every variant: they depend on LINK_FLAGS_FILE,
# which changes whenever the variant does, so switching relinks them.
OBJ_FLAGS_FILE := $(BUILD)/flags
FLAGS_FILE := $(REPO_ROOT)/build/linked-variant
FLAGS_NOW := $(CXX) $(CXXFLAGS) $(LDFLAGS)
$(shell mkdir -p $(BUILD) && \
  (test "$$(cat $(OBJ_FLAGS_FILE) 2>/dev/null)" = "$(FLAGS_NOW)" || echo "$(FLAGS_NOW)" > $(OBJ_FLAGS_FILE)) && \
  (test "$$(cat $(FLAGS_FILE) 2>/dev/null)" = "$(VARIANT) $(FLAGS_NOW)" || echo "$(VARIANT) $(FLAGS_NOW)" > $(FLAGS_FILE)))

# Every compile waits for the dependency check, so a missing compiler or
# header is reported as such (with the apt-get line), even under -j.
$(BUILD)/%.o: $(REPO_ROOT)/%.cpp $(OBJ_FLAGS_FILE) | deps
	@mkdir -p $(dir $@)
	$(CXX) $(CPPFLAGS) $(CXXFLAGS) -c $< -o $@

# Missing compiler, headers or tools: install them, or say how.
.PHONY: deps
deps:
	@CXX="$(CXX)" $(REPO_ROOT)/common/check-deps.sh

-include $(shell find $(REPO_ROOT)/build/$(VARIANT) -name '*.d' 2>/dev/null)
