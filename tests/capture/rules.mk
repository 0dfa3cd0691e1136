# tests/capture/rules.mk: real packet captures for the docs.
#
#   make capture STAGE=1     (2, 3) build the stage, run its scripted session
#                            while tcpdump records lo, write build/captures/stageN.txt
#                            and .pcap (a scratch directory; it says where)
#   make capture STAGE=1 UPDATE=1   write docs/captures/stageN.* instead: the
#                            committed captures the docs quote
#
# Needs tcpdump (installed through common/check-deps.sh) and the right to
# capture (root, or CAP_NET_RAW); not part of `make test`. See
# tests/capture/capture.sh.
# The stage Makefiles have a STAGE variable of their own (their directory), and
# a STAGE=N given on the command line would reach them: pass theirs back.
.PHONY: capture
capture: | deps
	@case "$(STAGE)" in 1|2|3) ;; *) echo "usage: make capture STAGE=1|2|3" >&2; exit 2 ;; esac
	@test -f $(STAGE_step$(STAGE))/Makefile || \
	    { echo "capture: stage $(STAGE) is not in this checkout" >&2; exit 1; }
	@$(MAKE) --no-print-directory -C $(STAGE_step$(STAGE)) STAGE=$(STAGE_step$(STAGE))
	@$(if $(filter 3,$(STAGE)),test -f $(STAGE_step3)/certs/ca.crt || $(MAKE) --no-print-directory certs)
	@$(REPO_ROOT)/common/check-deps.sh --optional tcpdump=tcpdump
	@OUT=$(if $(UPDATE),$(REPO_ROOT)/docs/captures,$(REPO_ROOT)/build/captures)/stage$(STAGE).txt \
	    $(REPO_ROOT)/tests/capture/capture.sh $(STAGE)
