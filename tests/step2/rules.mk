# tests/step2/rules.mk: the step2 suite also unit-tests the chat core.
$(BUILD)/bin/test-step2: $(BUILD)/step2_multiclient/chat.o
