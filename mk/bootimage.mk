# Production boot image (issue 7): the imager kernel (kernel-config/) and the buildroot recipe (buildroot/).
# Included by the main Makefile; works alone too:  make -f mk/bootimage.mk kernel-config-check
#
#   make kernel                 build/kernel/bzImage from Debian's linux-source + kernel-config/imager.fragment
#   make kernel-config-check    the same configuration steps without compiling; fails if a fragment symbol dropped
#   make buildroot BUILDROOT_DIR=/path/to/buildroot        the full buildroot image (downloads sources); the
#                               local imager package is synced again from imager/ on every run
#   make buildroot-check BUILDROOT_DIR=/path/to/buildroot  offline: imager_defconfig + symbol check + check-package
#
# Variables are prefixed KCONF_ (kernel) and BR_ (buildroot), except BUILDROOT_DIR and ALLOW_NO_BUILDROOT.

# Wherever the main Makefile includes this, its default goal stays its own (restored at the end).
KCONF_SAVED_DEFAULT_GOAL := $(.DEFAULT_GOAL)

# ---------------------------------------------------------------------------------------------- kernel
KCONF_SERIES ?= 6.1
KCONF_TARBALL ?= /usr/src/linux-source-$(KCONF_SERIES).tar.xz
# `linux-source` is Debian's metapackage for the current linux-source-<series>.
KCONF_APT_PACKAGES ?= linux-source flex bison bc libelf-dev libssl-dev xz-utils zstd build-essential
KCONF_FRAGMENT ?= kernel-config/imager.fragment
KCONF_ARCH_DEFCONFIG ?= x86_64_defconfig
KCONF_SRC_DIR ?= build/kernel-src
KCONF_SRC := $(KCONF_SRC_DIR)/linux-source-$(KCONF_SERIES)
KCONF_CHECK_DIR ?= build/kernel-config-check
KCONF_OBJ_DIR ?= build/kernel/obj
KCONF_IMAGE ?= build/kernel/bzImage
KCONF_PYTHON ?= /usr/bin/python3
KCONF_JOBS ?= $(shell nproc)
KCONF_NICE ?= nice -n 19
KCONF_CHECK := $(KCONF_PYTHON) kernel-config/check_config.py

.PHONY: kernel kernel-config-check buildroot buildroot-check

# Build tools and the kernel source, from Debian's archive (only what is missing is installed).
build/.kconf-tools-installed: mk/bootimage.mk
	@mkdir -p $(@D)
	@missing=""; for p in $(KCONF_APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "kernel: installing$$missing"; \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-get install -y --no-install-recommends $$missing || \
		{ apt-get update && apt-get install -y --no-install-recommends $$missing; } || exit 1; \
	fi
	@test -f $(KCONF_TARBALL) || { echo "kernel: $(KCONF_TARBALL) is missing; is linux-source still $(KCONF_SERIES)? (set KCONF_SERIES)"; exit 1; }
	@touch $@

# Unpacked once and kept; unpacked again only when Debian ships a new tarball (never because this file
# changed: a kernel build may be using the tree).
$(KCONF_SRC)/.unpacked: $(wildcard $(KCONF_TARBALL)) | build/.kconf-tools-installed
	rm -rf $(KCONF_SRC)
	mkdir -p $(KCONF_SRC_DIR)
	tar -C $(KCONF_SRC_DIR) -xf $(KCONF_TARBALL)
	@touch $@

# $(1): output directory.  arch defconfig, then the fragment merged on top, then olddefconfig resolves it.
define kconf_configure
	mkdir -p $(1)
	$(MAKE) -s -C $(KCONF_SRC) O=$(abspath $(1)) $(KCONF_ARCH_DEFCONFIG)
	cd $(KCONF_SRC) && ./scripts/kconfig/merge_config.sh -m -O $(abspath $(1)) $(abspath $(1))/.config \
		$(abspath $(KCONF_FRAGMENT)) >$(abspath $(1))/merge_config.log || { cat $(abspath $(1))/merge_config.log; exit 1; }
	$(MAKE) -s -C $(KCONF_SRC) O=$(abspath $(1)) olddefconfig
endef

kernel-config-check: $(KCONF_SRC)/.unpacked
	$(call kconf_configure,$(KCONF_CHECK_DIR))
	$(KCONF_CHECK) $(KCONF_FRAGMENT) $(KCONF_CHECK_DIR)/.config

kernel: $(KCONF_IMAGE)

$(KCONF_IMAGE): $(KCONF_SRC)/.unpacked $(KCONF_FRAGMENT) kernel-config/check_config.py
	$(call kconf_configure,$(KCONF_OBJ_DIR))
	$(KCONF_CHECK) $(KCONF_FRAGMENT) $(KCONF_OBJ_DIR)/.config
	$(KCONF_NICE) $(MAKE) -C $(KCONF_SRC) O=$(abspath $(KCONF_OBJ_DIR)) -j$(KCONF_JOBS) bzImage
	cp $(KCONF_OBJ_DIR)/.config $(@D)/config
	cp $(KCONF_OBJ_DIR)/arch/x86/boot/bzImage $@.tmp && mv $@.tmp $@
	@echo "kernel: $@ $$(du -h $@ | cut -f1), $$(cat $(KCONF_OBJ_DIR)/include/config/kernel.release)"

# ---------------------------------------------------------------------------------------------- buildroot
# BUILDROOT_DIR: a buildroot source tree (checked with 2026.05.1 and 2026.02.3).
BR_EXTERNAL := $(abspath buildroot)
BR_DEFCONFIG := imager_defconfig
BR_OUT ?= build/buildroot
BR_CHECK_OUT ?= build/buildroot-check
BR_PYTHON ?= /usr/bin/python3
# What buildroot wants on the host (its manual's "mandatory packages"), and check-package's linters.
BR_APT_PACKAGES ?= build-essential file rsync bc cpio unzip wget perl python3 patch gzip bzip2 tar findutils \
	libncurses-dev git
BR_CHECK_APT_PACKAGES ?= python3-magic python3-flake8 shellcheck
# buildroot must not see our make's command-line variables or job server; `make -n` stays a dry run.
BR_DRY_RUN = $(if $(findstring n,$(firstword -$(MAKEFLAGS))),-n)
BR_MAKE = env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL $(MAKE) $(BR_DRY_RUN) -C $(BUILDROOT_DIR) BR2_EXTERNAL=$(BR_EXTERNAL)
BR_NO_TREE_MESSAGE = no buildroot tree: set BUILDROOT_DIR=/path/to/buildroot (a 2026.x checkout, e.g. \
	git clone -b 2026.05.1 https://gitlab.com/buildroot.org/buildroot.git)

define br_require_tree
	@test -f "$(BUILDROOT_DIR)/Makefile" -a -x "$(BUILDROOT_DIR)/utils/check-package" || \
		{ echo "$(1): BUILDROOT_DIR=$(BUILDROOT_DIR) is not a buildroot tree"; exit 1; }
	@echo "$(1): buildroot $$(sed -n 's/^export BR2_VERSION := //p' $(BUILDROOT_DIR)/Makefile) in $(BUILDROOT_DIR)"
endef

define br_apt_install
	@missing=""; for p in $(1); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing$$missing"; \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-get install -y --no-install-recommends $$missing || \
		{ apt-get update && apt-get install -y --no-install-recommends $$missing; } || exit 1; \
	fi
endef

buildroot-check:
ifeq ($(strip $(BUILDROOT_DIR)),)
	@echo "buildroot-check: $(BR_NO_TREE_MESSAGE)"
	@if [ "$(ALLOW_NO_BUILDROOT)" = 1 ]; then echo "buildroot-check: skipped (ALLOW_NO_BUILDROOT=1)"; else exit 1; fi
else
	$(call br_require_tree,buildroot-check)
	$(call br_apt_install,$(BR_CHECK_APT_PACKAGES))
	rm -rf $(BR_CHECK_OUT)
	$(BR_MAKE) O=$(abspath $(BR_CHECK_OUT)) $(BR_DEFCONFIG)
	$(KCONF_CHECK) --prefix BR2_ buildroot/configs/$(BR_DEFCONFIG) $(BR_CHECK_OUT)/.config
	$(BR_PYTHON) $(BUILDROOT_DIR)/utils/check-package -b $$(find buildroot -type f | LC_ALL=C sort)
	@echo "buildroot-check: passed"
endif

buildroot:
ifeq ($(strip $(BUILDROOT_DIR)),)
	@echo "buildroot: $(BR_NO_TREE_MESSAGE)"; exit 1
else
	$(call br_require_tree,buildroot)
	$(call br_apt_install,$(BR_APT_PACKAGES))
	$(BR_MAKE) O=$(abspath $(BR_OUT)) $(BR_DEFCONFIG)
	$(KCONF_CHECK) --prefix BR2_ buildroot/configs/$(BR_DEFCONFIG) $(BR_OUT)/.config
	$(BR_MAKE) O=$(abspath $(BR_OUT)) imager-clean-for-rebuild
	$(BR_MAKE) O=$(abspath $(BR_OUT))
	@ls -l $(BR_OUT)/images/boot/
endif

.DEFAULT_GOAL := $(KCONF_SAVED_DEFAULT_GOAL)
