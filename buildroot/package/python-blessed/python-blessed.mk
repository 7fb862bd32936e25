################################################################################
#
# python-blessed
#
################################################################################

# 1.25.0 needs only wcwidth >= 0.1.4 on Linux (buildroot has 0.2.x);
# 1.52.0 wants wcwidth >= 0.9.2 and jinxed, which buildroot lacks.
PYTHON_BLESSED_VERSION = 1.25.0
PYTHON_BLESSED_SOURCE = blessed-$(PYTHON_BLESSED_VERSION).tar.gz
PYTHON_BLESSED_SITE = https://files.pythonhosted.org/packages/33/cd/eed8b82f1fabcb817d84b24d0780b86600b5c3df7ec4f890bcbb2371b0ad
PYTHON_BLESSED_SETUP_TYPE = flit
PYTHON_BLESSED_LICENSE = MIT
PYTHON_BLESSED_LICENSE_FILES = LICENSE

$(eval $(python-package))
