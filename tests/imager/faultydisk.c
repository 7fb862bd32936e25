/*
 * A disk image with unreadable sectors, for tests: FUSE (libfuse 2) shows one file, "disk", backed by a
 * regular file. A read touching a bad 4 KiB sector fails with EIO until a write covers that sector, as a real
 * disk remaps a pending sector when it is written. A loop device over "disk" is then a disk with bad sectors,
 * which this host can make no other way (no device-mapper, so no dm-error).
 *
 *     faultydisk BACKING MOUNTPOINT FIRST_BYTE LENGTH     (foreground; stop with SIGTERM, then umount)
 */
#define FUSE_USE_VERSION 26
#include <errno.h>
#include <fcntl.h>
#include <fuse.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SECTOR 4096

static int backing = -1;
static off_t bad_first, bad_end;   /* bytes, sector-aligned */
static unsigned char *healed;      /* a byte a bad sector: written since */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static int faulty_getattr(const char *path, struct stat *st)
{
    memset(st, 0, sizeof *st);
    if (strcmp(path, "/") == 0) {
        st->st_mode = S_IFDIR | 0755;
        st->st_nlink = 2;
        return 0;
    }
    if (strcmp(path, "/disk") != 0)
        return -ENOENT;
    if (fstat(backing, st) < 0)
        return -errno;
    st->st_mode = S_IFREG | 0600;
    return 0;
}

static int faulty_readdir(const char *path, void *buf, fuse_fill_dir_t fill, off_t offset,
                          struct fuse_file_info *fi)
{
    (void)offset;
    (void)fi;
    if (strcmp(path, "/") != 0)
        return -ENOENT;
    fill(buf, ".", NULL, 0);
    fill(buf, "..", NULL, 0);
    fill(buf, "disk", NULL, 0);
    return 0;
}

static int faulty_open(const char *path, struct fuse_file_info *fi)
{
    (void)fi;
    return strcmp(path, "/disk") == 0 ? 0 : -ENOENT;
}

/* Whether [offset, offset+size) touches a bad sector not written since. */
static int unreadable(off_t offset, size_t size)
{
    off_t at = offset > bad_first ? offset : bad_first;
    off_t end = offset + (off_t)size < bad_end ? offset + (off_t)size : bad_end;
    int bad = 0;
    pthread_mutex_lock(&lock);
    for (at -= (at - bad_first) % SECTOR; at < end && !bad; at += SECTOR)
        bad = !healed[(at - bad_first) / SECTOR];
    pthread_mutex_unlock(&lock);
    return bad;
}

static int faulty_read(const char *path, char *buf, size_t size, off_t offset, struct fuse_file_info *fi)
{
    ssize_t got;
    (void)path;
    (void)fi;
    if (unreadable(offset, size))
        return -EIO;
    got = pread(backing, buf, size, offset);
    return got < 0 ? -errno : (int)got;
}

static int faulty_write(const char *path, const char *buf, size_t size, off_t offset, struct fuse_file_info *fi)
{
    ssize_t put;
    off_t at;
    (void)path;
    (void)fi;
    put = pwrite(backing, buf, size, offset);
    if (put < 0)
        return -errno;
    pthread_mutex_lock(&lock);
    for (at = offset > bad_first ? offset : bad_first; at < offset + put && at < bad_end; at += SECTOR)
        healed[(at - bad_first) / SECTOR] = 1;
    pthread_mutex_unlock(&lock);
    return (int)put;
}

static int faulty_fsync(const char *path, int datasync, struct fuse_file_info *fi)
{
    (void)path;
    (void)fi;
    return (datasync ? fdatasync(backing) : fsync(backing)) < 0 ? -errno : 0;
}

static int faulty_truncate(const char *path, off_t size)
{
    (void)path;
    (void)size;
    return 0;   /* a disk keeps its size: opening it with O_TRUNC changes nothing */
}

static struct fuse_operations operations = {
    .getattr = faulty_getattr,
    .readdir = faulty_readdir,
    .open = faulty_open,
    .read = faulty_read,
    .write = faulty_write,
    .fsync = faulty_fsync,
    .truncate = faulty_truncate,
};

int main(int argc, char **argv)
{
    char *fuse_argv[6];
    if (argc != 5) {
        fprintf(stderr, "usage: %s BACKING MOUNTPOINT FIRST_BYTE LENGTH\n", argv[0]);
        return 2;
    }
    backing = open(argv[1], O_RDWR);
    if (backing < 0) {
        perror(argv[1]);
        return 1;
    }
    bad_first = strtoll(argv[3], NULL, 10) / SECTOR * SECTOR;
    bad_end = (strtoll(argv[3], NULL, 10) + strtoll(argv[4], NULL, 10) + SECTOR - 1) / SECTOR * SECTOR;
    healed = calloc((size_t)((bad_end - bad_first) / SECTOR) + 1, 1);
    if (!healed || bad_end <= bad_first) {
        fprintf(stderr, "faultydisk: no bad range\n");
        return 2;
    }
    fuse_argv[0] = argv[0];
    fuse_argv[1] = argv[2];
    fuse_argv[2] = "-f";
    fuse_argv[3] = "-o";
    fuse_argv[4] = "allow_other,fsname=faultydisk";
    fuse_argv[5] = NULL;
    return fuse_main(5, fuse_argv, &operations, NULL);
}
