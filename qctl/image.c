/* image.c - builder images: a directory with image.json, kernel, initrd */
#include "image.h"

#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "json-util.h"
#include "paths.h"
#include "recipe.h"

static bool
is_dir(const char *p)
{
	struct stat st;

	return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static char *
image_find(const char *name)
{
	char exe[PATH_MAX];
	const char *env = getenv("QCTL_IMAGES");
	char *p;
	ssize_t n;

	if (strchr(name, '/'))
		return is_dir(name) ? realpath(name, NULL) : NULL;
	if (!*name || name[0] == '.')
		return NULL;
	if (env && *env) {
		p = xasprintf("%s/%s", env, name);
		if (is_dir(p))
			return p;
		free(p);
	}
	/* build/qctl -> images/out beside build/ */
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n > 0) {
		char *slash;

		exe[n] = '\0';
		for (int up = 0; up < 2 && (slash = strrchr(exe, '/')); up++)
			*slash = '\0';
		p = xasprintf("%s/images/out/%s", exe, name);
		if (is_dir(p))
			return p;
		free(p);
	}
	p = xasprintf("images/out/%s", name);
	if (is_dir(p)) {
		char *r = realpath(p, NULL);

		free(p);
		return r;
	}
	free(p);
	/* installed: what `qctl image build` made, then what was installed */
	p = xasprintf("%s/%s", QCTL_IMAGEDIR, name);
	if (is_dir(p))
		return p;
	free(p);
	p = xasprintf("%s/images/%s", QCTL_DATADIR, name);
	if (is_dir(p))
		return p;
	free(p);
	return NULL;
}

static int
meta_name(json_t *j, const char *key, const char *dflt, const char *where,
	  char **out, struct error *err)
{
	json_t *v = json_object_get(j, key);
	const char *s;

	if (v && !json_is_string(v))
		return error_set(err, EINVAL, "%s: \"%s\" must be a string",
				 where, key);
	s = v ? json_string_value(v) : dflt;
	if (!s) {
		*out = NULL;
		return 0;
	}
	/* a file inside the image, never a path out of it */
	if (!*s || strchr(s, '/') || s[0] == '.' || strlen(s) > 255)
		return error_set(err, EINVAL, "%s: bad \"%s\"", where, key);
	*out = xstrdup(s);
	return 0;
}

/* "cpus" and "memory": what a recipe that names neither gets. */
static int
meta_defaults(json_t *j, const char *where, struct image_meta *m,
	      struct error *err)
{
	json_t *c = json_object_get(j, "cpus"), *mem = json_object_get(j,
								     "memory");

	if (c && (!json_is_integer(c) || json_integer_value(c) < 1 ||
		  json_integer_value(c) > 64))
		return error_set(err, EINVAL, "%s: \"cpus\" must be an "
				 "integer 1..64", where);
	if (mem && (!json_is_integer(mem) ||
		    json_integer_value(mem) < (64ll << 20) ||
		    json_integer_value(mem) > (64ll << 30)))
		return error_set(err, EINVAL, "%s: \"memory\" must be bytes, "
				 "64M..64G", where);
	m->cpus = c ? (int)json_integer_value(c) : 0;
	m->memory = mem ? (uint64_t)json_integer_value(mem) : 0;
	return 0;
}

static bool
hosts_name_ok(const char *s)
{
	size_t n = strlen(s);

	return n >= 1 && n <= 32 &&
	       strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789_-") == n;
}

static void
hosts_free(struct image_hosts *h, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(h[i].name);
		for (size_t k = 0; k < h[i].n; k++)
			free(h[i].entries[k]);
		free(h[i].entries);
	}
	free(h);
}

/* "hosts": {"apt": ["host:80", ...], ...}, each entry an allow entry. */
static int
meta_hosts(json_t *v, const char *where, struct image_meta *m,
	   struct error *err)
{
	const char *name;
	json_t *list;

	if (!v)
		return 0;
	if (!json_is_object(v) || json_object_size(v) > IMAGE_HOSTS_MAX)
		return error_set(err, EINVAL, "%s: \"hosts\" must be an object "
				 "of at most %d lists", where, IMAGE_HOSTS_MAX);
	m->hosts = xcalloc(json_object_size(v) ? json_object_size(v) : 1,
			   sizeof(*m->hosts));
	json_object_foreach(v, name, list) {
		struct image_hosts *h = &m->hosts[m->n_hosts];
		size_t i;
		json_t *e;

		if (!hosts_name_ok(name))
			return error_set(err, EINVAL, "%s: hosts: bad list "
					 "name (a-z, 0-9, _ and -, at most 32)",
					 where);
		if (!json_is_array(list) ||
		    json_array_size(list) > IMAGE_HOST_ENTRIES_MAX)
			return error_set(err, EINVAL, "%s: hosts.%s must be an "
					 "array of at most %d strings", where,
					 name, IMAGE_HOST_ENTRIES_MAX);
		h->name = xstrdup(name);
		h->entries = xcalloc(json_array_size(list) + 1,
				     sizeof(*h->entries));
		m->n_hosts++;
		json_array_foreach(list, i, e) {
			struct error e2 = { 0 };

			if (!json_is_string(e) ||
			    recipe_check_allow(json_string_value(e), &e2) < 0)
				return error_set(err, EINVAL, "%s: hosts.%s[%zu]"
						 ": %s", where, name, i,
						 json_is_string(e)
							 ? e2.msg
							 : "not a string");
			h->entries[h->n++] = xstrdup(json_string_value(e));
		}
	}
	return 0;
}

static void
strv_free(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

static char **
strv_dup(char *const *v, size_t n)
{
	char **d = xcalloc(n + 1, sizeof(*d));

	for (size_t i = 0; i < n; i++)
		d[i] = xstrdup(v[i]);
	return d;
}

/* KEY=VALUE: a shell variable's name, a value without control bytes. */
static bool
env_entry_ok(const char *e)
{
	const char *eq = strchr(e, '=');
	size_t klen = eq ? (size_t)(eq - e) : 0;

	if (!klen || strlen(e) > IMAGE_STEP_ENV_LEN ||
	    strspn(e, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_"
		      "0123456789") != klen ||
	    (e[0] >= '0' && e[0] <= '9'))
		return false;
	for (const unsigned char *p = (const unsigned char *)eq; *p; p++)
		if (*p < 0x20 || *p == 0x7f)
			return false;
	return true;
}

/* "step_env": {"none": ["K=V", ...], "fetch": [...]} */
static int
meta_step_env(json_t *v, const char *where, struct image_meta *m,
	      struct error *err)
{
	static const char *const nets[2] = { "none", "fetch" };
	const char *key;
	json_t *list;

	if (!v)
		return 0;
	if (!json_is_object(v))
		return error_set(err, EINVAL, "%s: \"step_env\" must be an "
				 "object", where);
	json_object_foreach(v, key, list) {
		int k = !strcmp(key, "none") ? 0 : !strcmp(key, "fetch") ? 1
									 : -1;
		size_t i;
		json_t *e;

		if (k < 0)
			return error_set(err, EINVAL, "%s: step_env: a network "
					 "is \"none\" or \"fetch\"", where);
		if (!json_is_array(list) ||
		    json_array_size(list) > IMAGE_STEP_ENV_MAX)
			return error_set(err, EINVAL, "%s: step_env.%s must be "
					 "an array of at most %d strings",
					 where, nets[k], IMAGE_STEP_ENV_MAX);
		m->step_env[k] = xcalloc(json_array_size(list) + 1,
					 sizeof(char *));
		json_array_foreach(list, i, e) {
			if (!json_is_string(e) ||
			    !env_entry_ok(json_string_value(e)))
				return error_set(err, EINVAL, "%s: step_env.%s"
						 "[%zu]: not KEY=VALUE", where,
						 nets[k], i);
			m->step_env[k][m->n_step_env[k]++] =
				xstrdup(json_string_value(e));
		}
	}
	return 0;
}

int
image_meta_parse(const char *buf, size_t len, const char *where,
		 struct image_meta *m, struct error *err)
{
	_cleanup_json_ json_t *j = NULL;
	json_error_t je;
	json_t *v;

	memset(m, 0, sizeof(*m));
	if (len > IMAGE_JSON_MAX)
		return error_set(err, EFBIG, "%s: larger than %d bytes", where,
				 IMAGE_JSON_MAX);
	j = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &je);
	if (!j || !json_is_object(j))
		return error_set(err, EINVAL, "%s: %s", where,
				 j ? "not an object" : je.text);
	if (meta_name(j, "kernel_pvh", NULL, where, &m->kernel_pvh, err) < 0 ||
	    meta_name(j, "kernel", "vmlinuz", where, &m->kernel, err) < 0 ||
	    meta_name(j, "initrd", "initrd.img", where, &m->initrd, err) < 0) {
		image_meta_free(m);
		return -EINVAL;
	}
	v = json_object_get(j, "cmdline");
	m->cmdline = xstrdup(json_is_string(v) ? json_string_value(v)
					       : "console=ttyS0 quiet");
	v = json_object_get(j, "name");
	m->name = json_is_string(v) ? xstrdup(json_string_value(v)) : NULL;
	v = json_object_get(j, "transport");
	if (v && (!json_is_string(v) ||
		  (strcmp(json_string_value(v), "agent") &&
		   strcmp(json_string_value(v), "ssh")))) {
		image_meta_free(m);
		return error_set(err, EINVAL, "%s: \"transport\" must be "
				 "\"agent\" or \"ssh\"", where);
	}
	m->ssh = v && !strcmp(json_string_value(v), "ssh");
	if (meta_name(j, "root", NULL, where, &m->root, err) < 0 ||
	    meta_defaults(j, where, m, err) < 0 ||
	    meta_hosts(json_object_get(j, "hosts"), where, m, err) < 0 ||
	    meta_step_env(json_object_get(j, "step_env"), where, m, err) < 0) {
		image_meta_free(m);
		return -EINVAL;
	}
	/* the init that starts sshd lives in the image's root */
	if (m->ssh && !m->root) {
		image_meta_free(m);
		return error_set(err, EINVAL, "%s: \"transport\": \"ssh\" "
				 "needs a \"root\"", where);
	}
	return 0;
}

void
image_meta_free(struct image_meta *m)
{
	free(m->kernel_pvh);
	free(m->kernel);
	free(m->initrd);
	free(m->root);
	free(m->cmdline);
	free(m->name);
	hosts_free(m->hosts, m->n_hosts);
	for (int k = 0; k < 2; k++)
		strv_free(m->step_env[k], m->n_step_env[k]);
	memset(m, 0, sizeof(*m));
}

const struct image_hosts *
image_hosts_get(const struct image *img, const char *name)
{
	for (size_t i = 0; i < img->n_hosts; i++)
		if (!strcmp(img->hosts[i].name, name))
			return &img->hosts[i];
	return NULL;
}

/* A regular file of the image, opened so that a FIFO cannot block us. */
static int
open_regular(int dfd, const char *name, struct error *err)
{
	struct stat st;
	int fd = openat(dfd, name, O_RDONLY | O_CLOEXEC | O_NONBLOCK |
					   O_NOCTTY);

	if (fd < 0)
		return error_sys(err, errno, "%s", name);
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return error_set(err, EINVAL, "%s: not a regular file", name);
	}
	return fd;
}

static void
image_init(struct image *img)
{
	memset(img, 0, sizeof(*img));
	img->kernel_fd = img->initrd_fd = img->root_fd = -1;
}

static void
image_fill(struct image *img, const char *dir, struct image_meta *m,
	   const char *kname, const char *fallback_name)
{
	img->dir = xstrdup(dir);
	img->kernel = xasprintf("%s/%s", dir, kname);
	img->initrd = xasprintf("%s/%s", dir, m->initrd);
	img->root = m->root ? xasprintf("%s/%s", dir, m->root) : NULL;
	img->cmdline = steal_pointer(&m->cmdline);
	img->name = m->name ? steal_pointer(&m->name)
			    : xstrdup(fallback_name);
	img->cpus = m->cpus;
	img->memory = m->memory;
	img->ssh = m->ssh;
	img->hosts = steal_pointer(&m->hosts);
	img->n_hosts = m->n_hosts;
	m->n_hosts = 0;
	for (int k = 0; k < 2; k++) {
		img->step_env[k] = steal_pointer(&m->step_env[k]);
		img->n_step_env[k] = m->n_step_env[k];
		m->n_step_env[k] = 0;
	}
}

int
image_open(const char *name_or_dir, struct image *img, struct error *err)
{
	_cleanup_free_ char *dir = image_find(name_or_dir);
	_cleanup_free_ char *buf = NULL;
	_cleanup_close_ int dfd = -1, jfd = -1, kfd = -1, ifd = -1, rfd = -1;
	struct image_meta m;
	const char *kname;
	ssize_t n;
	int r;

	image_init(img);
	if (!dir)
		return error_set(err, ENOENT,
				 "image \"%s\" not found (run `make image`, "
				 "or set QCTL_IMAGES)", name_or_dir);
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return error_sys(err, errno, "image %s", dir);
	jfd = open_regular(dfd, "image.json", err);
	if (jfd < 0) {
		error_prefix(err, "image %s", dir);
		return jfd;
	}
	buf = xmalloc(IMAGE_JSON_MAX + 1);
	n = read_in_full(jfd, buf, IMAGE_JSON_MAX + 1);
	if (n < 0)
		return error_sys(err, -n, "%s/image.json", dir);
	r = image_meta_parse(buf, n, "image.json", &m, err);
	if (r < 0) {
		error_prefix(err, "image %s", dir);
		return r;
	}
	/* An uncompressed ELF kernel boots through PVH without the
	 * decompressor: measurably faster under TCG.  Use it when built. */
	kname = m.kernel_pvh;
	if (kname)
		kfd = open_regular(dfd, kname, NULL);
	if (kfd < 0) {
		kname = m.kernel;
		kfd = open_regular(dfd, kname, err);
	}
	if (kfd >= 0)
		ifd = open_regular(dfd, m.initrd, err);
	/* read-only: QEMU gets this very file, and it is never written */
	if (ifd >= 0 && m.root)
		rfd = open_regular(dfd, m.root, err);
	if (kfd < 0 || ifd < 0 || (m.root && rfd < 0)) {
		error_prefix(err, "image %s", dir);
		image_meta_free(&m);
		return -ENOENT;
	}
	image_fill(img, dir, &m, kname, name_or_dir);
	img->kernel_fd = steal_fd(&kfd);
	img->initrd_fd = steal_fd(&ifd);
	img->root_fd = steal_fd(&rfd);
	image_meta_free(&m);
	return 0;
}

int
image_from_parts(const char *dir, const char *json, size_t len, bool pvh,
		 int kernel_fd, int initrd_fd, int root_fd, struct image *img,
		 struct error *err)
{
	struct image_meta m;
	int r;

	image_init(img);
	r = image_meta_parse(json, len, "image.json", &m, err);
	if (r == 0 && pvh && !m.kernel_pvh)
		r = error_set(err, EPROTO, "image.json names no kernel_pvh");
	if (r == 0 && !m.root != (root_fd < 0))
		r = error_set(err, EPROTO, "image.json and the files sent "
			      "disagree about a root disk");
	if (r < 0) {
		error_prefix(err, "image %s", dir);
		image_meta_free(&m);
		close(kernel_fd);
		close(initrd_fd);
		if (root_fd >= 0)
			close(root_fd);
		return r;
	}
	image_fill(img, dir, &m, pvh ? m.kernel_pvh : m.kernel, dir);
	img->kernel_fd = kernel_fd;
	img->initrd_fd = initrd_fd;
	img->root_fd = root_fd;
	image_meta_free(&m);
	return 0;
}

int
image_dup(const struct image *src, struct image *dst, struct error *err)
{
	image_init(dst);
	dst->kernel_fd = fcntl(src->kernel_fd, F_DUPFD_CLOEXEC, 3);
	dst->initrd_fd = fcntl(src->initrd_fd, F_DUPFD_CLOEXEC, 3);
	if (src->root_fd >= 0)
		dst->root_fd = fcntl(src->root_fd, F_DUPFD_CLOEXEC, 3);
	if (dst->kernel_fd < 0 || dst->initrd_fd < 0 ||
	    (src->root_fd >= 0 && dst->root_fd < 0)) {
		int e = errno;

		image_close(dst);
		return error_sys(err, e, "image: dup");
	}
	dst->dir = xstrdup(src->dir);
	dst->name = xstrdup(src->name);
	dst->kernel = xstrdup(src->kernel);
	dst->initrd = xstrdup(src->initrd);
	dst->cmdline = xstrdup(src->cmdline);
	dst->root = src->root ? xstrdup(src->root) : NULL;
	dst->cpus = src->cpus;
	dst->memory = src->memory;
	dst->ssh = src->ssh;
	dst->hosts = xcalloc(src->n_hosts ? src->n_hosts : 1,
			     sizeof(*dst->hosts));
	for (size_t i = 0; i < src->n_hosts; i++) {
		struct image_hosts *h = &dst->hosts[i];

		h->name = xstrdup(src->hosts[i].name);
		h->entries = xcalloc(src->hosts[i].n + 1, sizeof(*h->entries));
		for (h->n = 0; h->n < src->hosts[i].n; h->n++)
			h->entries[h->n] = xstrdup(src->hosts[i].entries[h->n]);
		dst->n_hosts++;
	}
	for (int k = 0; k < 2; k++) {
		dst->step_env[k] = strv_dup(src->step_env[k],
					    src->n_step_env[k]);
		dst->n_step_env[k] = src->n_step_env[k];
	}
	return 0;
}

void
image_close(struct image *img)
{
	free(img->dir);
	free(img->name);
	free(img->kernel);
	free(img->initrd);
	free(img->root);
	free(img->cmdline);
	hosts_free(img->hosts, img->n_hosts);
	for (int k = 0; k < 2; k++)
		strv_free(img->step_env[k], img->n_step_env[k]);
	if (img->kernel_fd >= 0)
		close(img->kernel_fd);
	if (img->initrd_fd >= 0)
		close(img->initrd_fd);
	if (img->root_fd >= 0)
		close(img->root_fd);
	image_init(img);
}
