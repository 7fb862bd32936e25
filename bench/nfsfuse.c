/*
 * A read-only NFSv4 mount in user space, for bench/incremental.py: FUSE (libfuse 2) over libnfs, in C.
 *
 * This host's kernel has no NFS client, and the boot image deploys from an NFS mount. bench/nfsfuse.py does the
 * same in Python, but a chunked image is tens of thousands of files read once each: there every file's lookup,
 * open, read and release went through the Python daemon, which then used more CPU than the deploy itself. This
 * one makes about the NFS calls a kernel client makes (an open, reads, a close a file; lookups from directory
 * listings, see nfs_getattr) plus FUSE's trips.
 *
 *     nfsfuse SERVER EXPORT MOUNTPOINT        (foreground; stop with SIGTERM, then umount)
 *
 * FUSE's worker threads share CONNECTIONS libnfs contexts (a context is not thread-safe: each has a lock), each
 * its own NFSv4 client identity. A file is opened on the context its path hashes to, once for all its opens. A call that fails for any reason but a missing
 * name is tried once more on a fresh context: libnfs renews no NFSv4 lease, so one idle past the server's lease
 * meets NFS4ERR_EXPIRED; files opened on the old context then answer EIO.
 */
#define FUSE_USE_VERSION 26
#include <errno.h>
#include <fcntl.h>
#include <fuse.h>
#include <nfsc/libnfs.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <limits.h>
#include <time.h>
#include <nfsc/libnfs-raw.h>
#include <nfsc/libnfs-raw-nfs.h>
#include <unistd.h>

#define CONNECTIONS 4

struct open_file {
    struct open_file *next;
    struct connection *conn;
    char *path;
    unsigned generation;
    int users;              /* FUSE opens sharing it */
    struct nfsfh *fh;
};

struct connection {
    pthread_mutex_t lock;
    struct nfs_context *nfs;
    unsigned generation;    /* a new context each connect: older files' handles are gone with the old one */
    uint64_t readmax;
    struct open_file *files;
};

static struct connection connections[CONNECTIONS];
static const char *server, *export_path;
static atomic_uint next_connection;

static int connect_nfs(struct connection *c)
{
    char name[96], verifier[9];
    if (c->nfs)
        nfs_destroy_context(c->nfs);
    c->nfs = nfs_init_context();
    if (!c->nfs)
        return -ENOMEM;
    nfs_set_version(c->nfs, 4);  /* NFS_V4 in libnfs-raw-nfs4.h */
    /* one client identity per context: with the same one, the server takes a second SETCLIENTID for a reboot */
    snprintf(name, sizeof name, "imager-nfsfuse-c-%d-%ld-%u", getpid(), (long)(c - connections), c->generation);
    snprintf(verifier, sizeof verifier, "%08x", (unsigned)random());
    nfs4_set_client_name(c->nfs, name);
    nfs4_set_verifier(c->nfs, verifier);
    if (nfs_mount(c->nfs, server, export_path) < 0) {
        fprintf(stderr, "nfsfuse: nfs_mount %s:%s: %s\n", server, export_path, nfs_get_error(c->nfs));
        nfs_destroy_context(c->nfs);
        c->nfs = NULL;
        return -EIO;
    }
    c->readmax = nfs_get_readmax(c->nfs);
    if (!c->readmax)
        c->readmax = 1 << 20;
    c->generation++;
    return 0;
}

/* A context, locked; NULL (EIO) if it cannot be connected. */
static struct connection *take(void)
{
    struct connection *c = &connections[atomic_fetch_add(&next_connection, 1) % CONNECTIONS];
    pthread_mutex_lock(&c->lock);
    if (!c->nfs && connect_nfs(c) < 0) {
        pthread_mutex_unlock(&c->lock);
        return NULL;
    }
    return c;
}

static int final(int result)
{
    return result >= 0 || result == -ENOENT || result == -ENOTDIR || result == -EISDIR || result == -EACCES;
}

/* Attributes from directory listings, as a kernel client's attribute cache holds them: a chunked deploy looks up
 * tens of thousands of files in 256 directories, and a kernel client's open of a name it has not seen is one
 * call (an OPEN that looks the name up and returns its attributes), where libnfs needs a GETATTR before the
 * OPEN. So a lookup is answered from the listing of its directory (one READDIR with attributes for all its
 * files, taken again when older than ATTR_SECONDS, like the kernel's acdirmin), and only a name the listing
 * lacks costs a GETATTR. */
#define ATTR_SECONDS 30
#define ATTR_BUCKETS 65536

struct cached_attr {
    struct cached_attr *next;
    char *path;             /* a file's path, or a listed directory's path with a '/' appended */
    struct stat st;
    time_t at;
};

static struct cached_attr *attrs[ATTR_BUCKETS];
static pthread_mutex_t attrs_lock = PTHREAD_MUTEX_INITIALIZER;

static unsigned path_hash(const char *path)
{
    unsigned hash = 5381;
    while (*path)
        hash = hash * 33 + (unsigned char)*path++;
    return hash;
}

/* The entry for ``path`` (attrs_lock held), made if ``create``. */
static struct cached_attr *attr_entry(const char *path, int create)
{
    struct cached_attr **bucket = &attrs[path_hash(path) % ATTR_BUCKETS], *e;
    for (e = *bucket; e; e = e->next)
        if (strcmp(e->path, path) == 0)
            return e;
    if (!create || (e = calloc(1, sizeof *e)) == NULL || (e->path = strdup(path)) == NULL) {
        free(e);
        return NULL;
    }
    e->next = *bucket;
    *bucket = e;
    return e;
}

static int cached_attr(const char *path, struct stat *out, time_t now)
{
    struct cached_attr *e;
    int hit = 0;
    pthread_mutex_lock(&attrs_lock);
    e = attr_entry(path, 0);
    if (e && now - e->at < ATTR_SECONDS) {
        *out = e->st;
        hit = 1;
    }
    pthread_mutex_unlock(&attrs_lock);
    return hit;
}

/* Lists ``dir`` (once an ATTR_SECONDS) and keeps its files' attributes. */
static void list_directory(const char *dir, time_t now)
{
    char key[PATH_MAX + 2], path[PATH_MAX + NAME_MAX + 2];
    struct connection *c;
    struct cached_attr *e;
    struct nfsdir *listing;
    struct nfsdirent *entry;
    snprintf(key, sizeof key, "%s/", dir);
    pthread_mutex_lock(&attrs_lock);
    e = attr_entry(key, 1);
    if (!e || now - e->at < ATTR_SECONDS) {  /* listed lately (or being listed by another thread) */
        pthread_mutex_unlock(&attrs_lock);
        return;
    }
    e->at = now;
    pthread_mutex_unlock(&attrs_lock);
    if ((c = take()) == NULL)
        return;
    if (nfs_opendir(c->nfs, dir, &listing) == 0) {
        pthread_mutex_lock(&attrs_lock);
        while ((entry = nfs_readdir(c->nfs, listing)) != NULL) {
            if (entry->type != NF3REG)
                continue;
            snprintf(path, sizeof path, "%s/%s", dir, entry->name);   /* dir is never "/": see nfs_getattr */
            if ((e = attr_entry(path, 1)) == NULL)
                break;
            memset(&e->st, 0, sizeof e->st);
            e->st.st_mode = S_IFREG | (entry->mode & 0555);
            e->st.st_nlink = entry->nlink;
            e->st.st_size = entry->size;
            e->st.st_uid = entry->uid;
            e->st.st_gid = entry->gid;
            e->st.st_ino = entry->inode;
            e->st.st_atim.tv_sec = entry->atime.tv_sec;
            e->st.st_mtim.tv_sec = entry->mtime.tv_sec;
            e->st.st_ctim.tv_sec = entry->ctime.tv_sec;
            e->at = now;
        }
        pthread_mutex_unlock(&attrs_lock);
        nfs_closedir(c->nfs, listing);
    }
    pthread_mutex_unlock(&c->lock);
}

static int nfs_getattr(const char *path, struct stat *out)
{
    struct nfs_stat_64 st;
    struct connection *c;
    char dir[PATH_MAX + 1];
    const char *slash = strrchr(path, '/');
    time_t now = time(NULL);
    int r;
    if (slash && slash != path && (size_t)(slash - path) < sizeof dir) {
        if (cached_attr(path, out, now))
            return 0;
        memcpy(dir, path, slash - path);
        dir[slash - path] = 0;
        list_directory(dir, now);
        if (cached_attr(path, out, now))
            return 0;
    }
    if ((c = take()) == NULL)
        return -EIO;
    r = nfs_lstat64(c->nfs, path, &st);
    if (!final(r) && connect_nfs(c) == 0)
        r = nfs_lstat64(c->nfs, path, &st);
    pthread_mutex_unlock(&c->lock);
    if (r < 0)
        return r;
    memset(out, 0, sizeof *out);
    out->st_mode = st.nfs_mode;
    if (S_ISREG(out->st_mode) || S_ISDIR(out->st_mode))
        out->st_mode &= ~0222;  /* read only */
    out->st_nlink = st.nfs_nlink;
    out->st_size = st.nfs_size;
    out->st_uid = st.nfs_uid;
    out->st_gid = st.nfs_gid;
    out->st_ino = st.nfs_ino;
    out->st_atim.tv_sec = st.nfs_atime;
    out->st_atim.tv_nsec = st.nfs_atime_nsec;
    out->st_mtim.tv_sec = st.nfs_mtime;
    out->st_mtim.tv_nsec = st.nfs_mtime_nsec;
    out->st_ctim.tv_sec = st.nfs_ctime;
    out->st_ctim.tv_nsec = st.nfs_ctime_nsec;
    return 0;
}

static int nfs_readlink_(const char *path, char *buf, size_t size)
{
    struct connection *c = take();
    int r;
    if (!c)
        return -EIO;
    r = nfs_readlink(c->nfs, path, buf, size);
    if (!final(r) && connect_nfs(c) == 0)
        r = nfs_readlink(c->nfs, path, buf, size);
    pthread_mutex_unlock(&c->lock);
    return r < 0 ? r : 0;
}

static int nfs_readdir_(const char *path, void *buf, fuse_fill_dir_t fill, off_t offset, struct fuse_file_info *fi)
{
    struct nfsdir *dir;
    struct nfsdirent *entry;
    struct connection *c = take();
    int r;
    (void)offset;
    (void)fi;
    if (!c)
        return -EIO;
    r = nfs_opendir(c->nfs, path, &dir);
    if (!final(r) && connect_nfs(c) == 0)
        r = nfs_opendir(c->nfs, path, &dir);
    if (r == 0) {
        while ((entry = nfs_readdir(c->nfs, dir)) != NULL)
            fill(buf, entry->name, NULL, 0);
        nfs_closedir(c->nfs, dir);
    }
    pthread_mutex_unlock(&c->lock);
    return r;
}

/* One NFSv4 open a file a context: a second OPEN of a file by the same open-owner moves its state on, and reads
 * with the first one's stateid then fail (NFS4ERR_OLD_STATEID). A chunked image names some chunks many times
 * (empty ranges), read at once by several threads: so a file is always opened on the same context (by its
 * path's hash) and its opens share one handle. */
static struct connection *connection_of(const char *path)
{
    return &connections[path_hash(path) % CONNECTIONS];
}

static int nfs_open_(const char *path, struct fuse_file_info *fi)
{
    struct connection *c = connection_of(path);
    struct open_file *file;
    struct nfsfh *fh = NULL;
    int r = 0;
    if ((fi->flags & O_ACCMODE) != O_RDONLY || fi->flags & (O_TRUNC | O_CREAT))
        return -EROFS;
    pthread_mutex_lock(&c->lock);
    if (!c->nfs && connect_nfs(c) < 0) {
        pthread_mutex_unlock(&c->lock);
        return -EIO;
    }
    for (file = c->files; file; file = file->next)
        if (file->generation == c->generation && strcmp(file->path, path) == 0)
            break;
    if (!file) {
        r = nfs_open(c->nfs, path, O_RDONLY, &fh);
        if (!final(r) && connect_nfs(c) == 0)
            r = nfs_open(c->nfs, path, O_RDONLY, &fh);
        if (!final(r))
            fprintf(stderr, "nfsfuse: open %s: %s\n", path, c->nfs ? nfs_get_error(c->nfs) : "no connection");
        if (r == 0 && (file = calloc(1, sizeof *file)) != NULL && (file->path = strdup(path)) != NULL) {
            file->conn = c;
            file->generation = c->generation;
            file->fh = fh;
            file->next = c->files;
            c->files = file;
        } else if (r == 0) {
            nfs_close(c->nfs, fh);
            free(file);
            file = NULL;
            r = -ENOMEM;
        }
    }
    if (file)
        file->users++;
    pthread_mutex_unlock(&c->lock);
    if (r < 0)
        return r;
    fi->fh = (uint64_t)(uintptr_t)file;
    return 0;
}

static int nfs_read_(const char *path, char *buf, size_t size, off_t offset, struct fuse_file_info *fi)
{
    struct open_file *file = (struct open_file *)(uintptr_t)fi->fh;
    struct connection *c = file->conn;
    size_t got = 0;
    int r = 0;
    pthread_mutex_lock(&c->lock);
    if (file->generation != c->generation || !c->nfs) {  /* its context was renewed: its handle is gone */
        pthread_mutex_unlock(&c->lock);
        return -EIO;
    }
    while (got < size) {  /* at most readmax a call: the server's limit */
        uint64_t want = size - got < c->readmax ? size - got : c->readmax;
        r = nfs_pread(c->nfs, file->fh, offset + got, want, buf + got);
        if (r <= 0)
            break;
        got += r;
    }
    if (r < 0)
        fprintf(stderr, "nfsfuse: read %s at %lld: %s\n", path, (long long)(offset + got), nfs_get_error(c->nfs));
    pthread_mutex_unlock(&c->lock);
    return r < 0 && got == 0 ? r : (int)got;
}

static int nfs_release_(const char *path, struct fuse_file_info *fi)
{
    struct open_file *file = (struct open_file *)(uintptr_t)fi->fh;
    struct connection *c = file->conn;
    struct open_file **at;
    (void)path;
    pthread_mutex_lock(&c->lock);
    if (--file->users == 0) {
        for (at = &c->files; *at; at = &(*at)->next)
            if (*at == file) {
                *at = file->next;
                break;
            }
        if (file->generation == c->generation && c->nfs)
            nfs_close(c->nfs, file->fh);
        free(file->path);
        free(file);
    }
    pthread_mutex_unlock(&c->lock);
    return 0;
}

static int nfs_statfs_(const char *path, struct statvfs *out)
{
    (void)path;
    memset(out, 0, sizeof *out);
    out->f_bsize = out->f_frsize = 4096;
    out->f_namemax = 255;
    return 0;
}

int main(int argc, char **argv)
{
    static struct fuse_operations operations = {
        .getattr = nfs_getattr, .readlink = nfs_readlink_, .readdir = nfs_readdir_, .open = nfs_open_,
        .read = nfs_read_, .release = nfs_release_, .statfs = nfs_statfs_,
    };
    char options[512];
    char *fuse_argv[6];
    int i;
    if (argc != 4) {
        fprintf(stderr, "usage: %s SERVER EXPORT MOUNTPOINT\n", argv[0]);
        return 2;
    }
    server = argv[1];
    export_path = argv[2];
    srandom((unsigned)getpid());
    for (i = 0; i < CONNECTIONS; i++) {  /* fail now, before mounting, if the server is not there */
        pthread_mutex_init(&connections[i].lock, NULL);
        if (connect_nfs(&connections[i]) < 0)
            return 1;
    }
    /* max_read: the kernel asks in 128 KiB reads rather than 4 KiB ones */
    snprintf(options, sizeof options, "ro,allow_other,max_read=131072,fsname=nfsfuse:%s:%s", server, export_path);
    fuse_argv[0] = argv[0];
    fuse_argv[1] = argv[3];
    fuse_argv[2] = "-f";
    fuse_argv[3] = "-o";
    fuse_argv[4] = options;
    fuse_argv[5] = NULL;
    return fuse_main(5, fuse_argv, &operations, NULL);
}
