################################################################################
#
# partclone
#
################################################################################

PARTCLONE_VERSION = 0.3.47
PARTCLONE_SITE = https://github.com/Thomas-Tsai/partclone.git
PARTCLONE_SITE_METHOD = git
PARTCLONE_LICENSE = GPL-2.0+
PARTCLONE_LICENSE_FILES = COPYING
# The tag has neither a configure script nor the gettext files.
PARTCLONE_AUTORECONF = YES
PARTCLONE_AUTOPOINT = YES
PARTCLONE_DEPENDENCIES = \
	host-pkgconf \
	e2fsprogs \
	liburcu \
	ntfs-3g \
	openssl \
	util-linux \
	xxhash \
	zlib \
	zstd \
	$(TARGET_NLS_DEPENDENCIES)
PARTCLONE_CONF_ENV = LIBS="$(TARGET_NLS_LIBS)"
PARTCLONE_CONF_OPTS = \
	--enable-extfs \
	--enable-ntfs \
	--enable-fat \
	--enable-exfat \
	--enable-xfs \
	--enable-btrfs \
	--enable-xxhash \
	--disable-fuse \
	--disable-isal \
	--disable-ncursesw \
	--disable-static-linking \
	--disable-mtrace \
	--disable-fs-test

$(eval $(autotools-package))
