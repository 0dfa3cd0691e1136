# tests/robustness/rules.mk: the robustness suite replays the fuzzers' seeds
# and regressions through their checks (tests/fuzz/targets.cpp, with the chat
# core), and its TLS scan speaks raw TLS records with OpenSSL's help.
$(BUILD)/bin/test-robustness: $(BUILD)/tests/fuzz/targets.o $(BUILD)/step2_multiclient/chat.o
SUITE_LIBS_robustness := $(SSL_LIBS)
