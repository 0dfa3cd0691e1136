# tests/docs/rules.mk: `make docs-snippets` re-pastes every quoted snippet in
# docs/ from the code it quotes (see docs/README.md#for-contributors).
.PHONY: docs-snippets
docs-snippets:
	@python3 $(REPO_ROOT)/tests/docs/update-snippets.py
