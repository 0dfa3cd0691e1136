# tests/step3/rules.mk: the stage 3 suite links OpenSSL and the stage's
# tls.o (RAII owners, error text) for its own TLS test client.
SUITE_LIBS_step3 := $(SSL_LIBS)
$(BUILD)/bin/test-step3: $(BUILD)/step3_tls/tls.o
