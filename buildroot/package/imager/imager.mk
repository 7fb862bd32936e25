################################################################################
#
# imager
#
################################################################################

# The Python package of this very repository: buildroot/.. is its root.
IMAGER_SITE = $(BR2_EXTERNAL_IMAGER_PATH)/..
IMAGER_SITE_METHOD = local
IMAGER_SETUP_TYPE = setuptools
# Sync only what the wheel is built from: the client and the contract it
# shares with the server; never build/ (where buildroot's own output may
# live), .venv/ or the server (setuptools skips packages it does not find).
IMAGER_OVERRIDE_SRCDIR_RSYNC_EXCLUSIONS = \
	--exclude=__pycache__ \
	--include=/pyproject.toml \
	--include='/imager/***' \
	--include='/contract/***' \
	--exclude='*'

# pyproject.toml also declares the server's entry point; the server is
# not part of the boot image.
define IMAGER_REMOVE_SERVER_SCRIPT
	rm -f $(TARGET_DIR)/usr/bin/imager-server
endef
IMAGER_POST_INSTALL_TARGET_HOOKS += IMAGER_REMOVE_SERVER_SCRIPT

$(eval $(python-package))
