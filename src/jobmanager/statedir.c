/* jobmanager/statedir.c - the state directory and what the daemon creates in it: ours alone, never through a link.
 *
 * Design note. The daemon often runs as root, and its state directory holds
 * what nobody without the token may reach: the token, every job's
 * spec.json, logs and results, the job store. So the directory must be
 * ours alone: owned by the daemon's user, no access at all for group or
 * others, and reached only through directories that nobody else can change
 * (each one above it owned by root or by us, and writable by others only
 * with the sticky bit, as /tmp is). Then nobody else can plant a file or a
 * symbolic link in it, nor swap it for another directory. On top of that,
 * every file the daemon creates is opened with O_NOFOLLOW and O_CLOEXEC and
 * mode 0600 (the daemon's umask is 077 besides), and every directory it
 * keeps (jobs/, jobs/<id>/, logs/, results/, sock/) is created 0700 or, if
 * it exists, checked like the state directory.
 *
 * A directory that fails a check is refused, naming what is wrong and the
 * command that fixes it; the daemon never widens or narrows the mode of a
 * directory itself: one that others could enter may have been entered, and
 * the person who opened it should know. A file of ours with group or other
 * bits (written by an older version) is narrowed to the owner's bits when
 * the daemon opens it: it sits in a directory only we can enter.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "jobmanager/jm.h"
#include "util/err.h"
#include "util/num.h"

static const char *user_name(uid_t uid, char *buf, size_t len)
{
    struct passwd pw, *pwp = NULL;
    char tmp[2048];
    if (getpwuid_r(uid, &pw, tmp, sizeof tmp, &pwp) == 0 && pwp)
        sage__fmt(buf, len, "%s (uid %u)", pwp->pw_name, (unsigned)uid);
    else
        sage__fmt(buf, len, "uid %u", (unsigned)uid);
    return buf;
}

/* Why the directory path (st from a descriptor opened without following a link) is not private, or 0. */
static int dir_private(const char *path, const struct stat *st, char *err, size_t err_len)
{
    uid_t me = geteuid();
    char owner[128], self[128];
    if (!S_ISDIR(st->st_mode)) {
        sage__fmt(err, err_len, "%s is not a directory", path);
        return SAGE_ESTATE;
    }
    if (st->st_uid != me) {
        sage__fmt(err, err_len,
                  "%s belongs to %s, not to the JobManager's user, %s: its owner could replace anything in it; use "
                  "a directory of your own, or make it yours: chown %u %s && chmod 700 %s",
                  path, user_name(st->st_uid, owner, sizeof owner), user_name(me, self, sizeof self), (unsigned)me,
                  path, path);
        return SAGE_ESTATE;
    }
    if (st->st_mode & 077) {
        sage__fmt(err, err_len,
                  "%s is open to %s (mode %04o): the JobManager keeps its token, job logs and results there and "
                  "wants it private; make it so: chmod 700 %s",
                  path, st->st_mode & 022 ? "changes by others" : "others", (unsigned)(st->st_mode & 07777), path);
        return SAGE_ESTATE;
    }
    return 0;
}

/* Why path (lstat'ed after O_NOFOLLOW failed with e) could not be opened. */
static int not_opened(const char *path, int e, const char *what, char *err, size_t err_len)
{
    struct stat st;
    if ((e == ELOOP || e == ENOTDIR || e == EMLINK) && lstat(path, &st) == 0 && S_ISLNK(st.st_mode))
        sage__fmt(err, err_len,
                  "%s is a symbolic link: the JobManager never follows links in its state directory; remove it", path);
    else
        sage__fmt(err, err_len, "cannot open %s %s: %s", what, path, strerror(e));
    return SAGE_ESTATE;
}

int jm_private_dir(const char *path, char *err, size_t err_len)
{
    if (mkdir(path, 0700) != 0 && errno != EEXIST) {
        sage__fmt(err, err_len, "cannot create %s: %s", path, strerror(errno));
        return SAGE_ESTATE;
    }
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return not_opened(path, errno, "directory", err, err_len);
    struct stat st;
    int rc = fstat(fd, &st) == 0 ? dir_private(path, &st, err, err_len) : SAGE_ESTATE;
    if (rc != 0 && !err[0])
        sage__fmt(err, err_len, "cannot stat %s: %s", path, strerror(errno));
    close(fd);
    return rc;
}

int jm_private_open(const char *path, int flags, char *err, size_t err_len)
{
    int trunc = flags & O_TRUNC; /* only once the file is known to be ours */
    int fd = open(path, (flags & ~O_TRUNC) | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY, 0600);
    if (fd < 0) {
        not_opened(path, errno, "file", err, err_len);
        return -1;
    }
    struct stat st;
    char owner[128];
    if (fstat(fd, &st) != 0) {
        sage__fmt(err, err_len, "cannot stat %s: %s", path, strerror(errno));
    } else if (!S_ISREG(st.st_mode)) {
        sage__fmt(err, err_len, "%s is not a regular file", path);
    } else if (st.st_uid != geteuid()) {
        sage__fmt(err, err_len, "%s belongs to %s, not to the JobManager's user; remove it", path,
                  user_name(st.st_uid, owner, sizeof owner));
    } else {
        if ((st.st_mode & 077) && fchmod(fd, st.st_mode & 0700) != 0) {
            sage__fmt(err, err_len, "%s is open to others (mode %04o) and could not be made private: %s", path,
                      (unsigned)(st.st_mode & 07777), strerror(errno));
            close(fd);
            return -1;
        }
        if (trunc && ftruncate(fd, 0) != 0) {
            sage__fmt(err, err_len, "cannot truncate %s: %s", path, strerror(errno));
            close(fd);
            return -1;
        }
        return fd;
    }
    close(fd);
    return -1;
}

int jm_private_dump(const char *path, const json_t *doc, size_t flags, char *err, size_t err_len)
{
    char *text = json_dumps(doc, flags);
    if (!text) {
        sage__fmt(err, err_len, "out of memory writing %s", path);
        return SAGE_ENOMEM;
    }
    int fd = jm_private_open(path, O_WRONLY | O_CREAT | O_TRUNC, err, err_len);
    size_t len = strlen(text), off = 0;
    while (fd >= 0 && off < len) {
        ssize_t n = write(fd, text + off, len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            sage__fmt(err, err_len, "cannot write %s: %s", path, n < 0 ? strerror(errno) : "nothing written");
            break;
        }
        off += (size_t)n;
    }
    free(text);
    if (fd >= 0 && close(fd) != 0 && off == len) {
        sage__fmt(err, err_len, "cannot write %s: %s", path, strerror(errno));
        off = 0;
    }
    return fd >= 0 && off == len ? 0 : SAGE_EIO;
}

int jm_store_files(const char *db, char *err, size_t err_len)
{
    int fd = jm_private_open(db, O_RDWR | O_CREAT, err, err_len);
    if (fd < 0)
        return SAGE_ESTATE;
    close(fd);
    static const char *const side[] = {"-wal", "-shm", "-journal"};
    for (size_t i = 0; i < sizeof side / sizeof side[0]; i++) {
        char path[PATH_MAX + 16];
        sage__fmt(path, sizeof path, "%s%s", db, side[i]);
        struct stat st;
        if (lstat(path, &st) != 0)
            continue; /* SQLite creates it, with the database's mode */
        if ((fd = jm_private_open(path, O_RDWR, err, err_len)) < 0)
            return SAGE_ESTATE;
        close(fd);
    }
    return 0;
}

/* Every directory above real (an absolute path without links): owned by root or us, and writable by others
 * only with the sticky bit; otherwise someone else could rename the state directory and put their own there. */
static int ancestors_safe(const char *real, char *err, size_t err_len)
{
    char path[PATH_MAX];
    sage__strlcpy(path, real, sizeof path);
    uid_t me = geteuid();
    for (char *slash = strrchr(path, '/'); slash; slash = strrchr(path, '/')) {
        if (slash == path)
            slash[1] = '\0'; /* "/" itself, last */
        else
            *slash = '\0';
        struct stat st;
        char owner[128];
        if (stat(path, &st) != 0) {
            sage__fmt(err, err_len, "cannot stat %s, above the state directory %s: %s", path, real, strerror(errno));
            return SAGE_ESTATE;
        }
        if (st.st_uid != 0 && st.st_uid != me) {
            sage__fmt(err, err_len,
                      "%s, above the state directory %s, belongs to %s: that user could swap the state directory "
                      "for another; choose a state directory whose parents belong to root or to you",
                      path, real, user_name(st.st_uid, owner, sizeof owner));
            return SAGE_ESTATE;
        }
        if ((st.st_mode & 022) && !(st.st_mode & S_ISVTX)) {
            sage__fmt(err, err_len,
                      "%s, above the state directory %s, can be changed by others (mode %04o, no sticky bit): they "
                      "could swap the state directory for another; chmod go-w %s, or choose another place",
                      path, real, (unsigned)(st.st_mode & 07777), path);
            return SAGE_ESTATE;
        }
        if (slash == path)
            break;
    }
    return 0;
}

/* The pid file: opened without following a link, locked for our lifetime. */
static int lock_pid_file(jm *d, int *pidfd, char *err, size_t err_len)
{
    char path[PATH_MAX + 32];
    sage__fmt(path, sizeof path, "%s/jobmanager.pid", d->home);
    int fd = jm_private_open(path, O_RDWR | O_CREAT, err, err_len);
    if (fd < 0)
        return SAGE_ESTATE;
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        char buf[32] = "";
        ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
        buf[n > 0 ? n : 0] = 0;
        buf[strcspn(buf, "\n")] = 0;
        int64_t pid = 0;
        if (sage__parse_i64(buf, 1, INT32_MAX, &pid) == 0)
            sage__fmt(err, err_len, "a JobManager is already running with pid %lld (state directory %s)",
                      (long long)pid, d->home);
        else
            sage__fmt(err, err_len, "a JobManager is already running (state directory %s)", d->home);
        close(fd);
        return SAGE_ESTATE;
    }
    *pidfd = fd;
    return 0;
}

int jm_home_take(jm *d, int *pidfd, char *err, size_t err_len)
{
    if (mkdir(d->home, 0700) != 0 && errno != EEXIST) {
        sage__fmt(err, err_len, "cannot create the state directory %s: %s", d->home, strerror(errno));
        return SAGE_EIO;
    }
    char real[PATH_MAX];
    if (!realpath(d->home, real)) {
        sage__fmt(err, err_len, "cannot resolve the state directory %s: %s", d->home, strerror(errno));
        return SAGE_EIO;
    }
    if (strlen(real) >= sizeof d->home) {
        sage__fmt(err, err_len, "the state directory's path %s is too long", real);
        return SAGE_ETOOBIG;
    }
    int rc = ancestors_safe(real, err, err_len);
    if (rc == 0 && (rc = jm_private_dir(real, err, err_len)) != 0 && strcmp(real, d->home) != 0) {
        size_t l = strlen(err); /* say which name the user gave it */
        sage__fmt(err + l, err_len - l, " (the state directory %s)", d->home);
    }
    if (rc != 0)
        return rc;
    sage__strlcpy(d->home, real, sizeof d->home);
    char path[PATH_MAX + 32];
    sage__fmt(path, sizeof path, "%s/jobs", d->home);
    if ((rc = jm_private_dir(path, err, err_len)) != 0)
        return rc;
    return lock_pid_file(d, pidfd, err, err_len);
}
