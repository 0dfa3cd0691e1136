# tests/diagrams/rules.mk: `make test-diagrams` parses every Mermaid diagram in
# README.md and docs/ with the mermaid package itself (check-mermaid.mjs), so a
# diagram GitHub could not render fails the build.
#
# Needs node and npm (installed through common/check-deps.sh when missing);
# the first run installs mermaid and jsdom into build/mermaid/ (git-ignored,
# about 170 MB), which is why it is not part of `make test`. .ci/run runs it.
MERMAID_DIR := $(REPO_ROOT)/build/mermaid
MERMAID_PACKAGES := mermaid@11.17.2 jsdom@24.1.3
MERMAID_STAMP := $(MERMAID_DIR)/.installed-$(subst @,-,$(subst $(eval) ,_,$(MERMAID_PACKAGES)))

.PHONY: test-diagrams
test-diagrams: $(MERMAID_STAMP)
	@node $(REPO_ROOT)/tests/diagrams/check-mermaid.mjs $(REPO_ROOT) $(MERMAID_DIR)/node_modules

$(MERMAID_STAMP):
	@$(REPO_ROOT)/common/check-deps.sh --optional node=nodejs npm=npm
	@command -v node >/dev/null && command -v npm >/dev/null || \
	    { echo "test-diagrams: needs node and npm (apt-get install nodejs npm)" >&2; exit 1; }
	@mkdir -p $(MERMAID_DIR)
	@echo "test-diagrams: installing $(MERMAID_PACKAGES) into build/mermaid/ with npm"
	@npm install --prefix $(MERMAID_DIR) --no-audit --no-fund --loglevel=error $(MERMAID_PACKAGES)
	@touch $@
