/* image.c - builder images: a directory with image.json, kernel, initrd */
#include "image.h"

#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "json-util.h"

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
	p = xasprintf("/usr/local/share/qctl/images/%s", name);
	if (is_dir(p))
		return p;
	free(p);
	return NULL;
}

static int
image_file(const char *dir, json_t *j, const char *key, const char *dflt,
	   char **out, struct error *err)
{
	json_t *v = json_object_get(j, key);
	const char *s = json_is_string(v) ? json_string_value(v) : dflt;
	struct stat st;

	if (!s || strchr(s, '/') || !*s || s[0] == '.')
		return error_set(err, EINVAL, "%s/image.json: bad \"%s\"", dir,
				 key);
	*out = xasprintf("%s/%s", dir, s);
	if (stat(*out, &st) < 0 || !S_ISREG(st.st_mode))
		return error_set(err, ENOENT, "image %s: missing %s", dir, s);
	return 0;
}

int
image_open(const char *name_or_dir, struct image *img, struct error *err)
{
	_cleanup_free_ char *dir = image_find(name_or_dir);
	_cleanup_free_ char *meta = NULL;
	_cleanup_json_ json_t *j = NULL;
	json_error_t je;
	json_t *v;
	int r;

	memset(img, 0, sizeof(*img));
	if (!dir)
		return error_set(err, ENOENT,
				 "image \"%s\" not found (run `make image`, "
				 "or set QCTL_IMAGES)", name_or_dir);
	meta = xasprintf("%s/image.json", dir);
	j = json_load_file(meta, JSON_REJECT_DUPLICATES, &je);
	if (!j || !json_is_object(j))
		return error_set(err, EINVAL, "%s: %s", meta,
				 j ? "not an object" : je.text);
	/* An uncompressed ELF kernel boots through PVH without the
	 * decompressor: measurably faster under TCG.  Use it when built. */
	if (json_is_string(json_object_get(j, "kernel_pvh")) &&
	    image_file(dir, j, "kernel_pvh", NULL, &img->kernel, NULL) == 0)
		r = 0;
	else {
		free(img->kernel);
		img->kernel = NULL;
		r = image_file(dir, j, "kernel", "vmlinuz", &img->kernel, err);
	}
	if (r == 0)
		r = image_file(dir, j, "initrd", "initrd.img", &img->initrd,
			       err);
	if (r < 0) {
		image_close(img);
		return r;
	}
	v = json_object_get(j, "cmdline");
	img->cmdline = xstrdup(json_is_string(v) ? json_string_value(v)
						 : "console=ttyS0 quiet");
	v = json_object_get(j, "name");
	img->name = xstrdup(json_is_string(v) ? json_string_value(v)
					      : name_or_dir);
	img->dir = steal_pointer(&dir);
	return 0;
}

void
image_close(struct image *img)
{
	free(img->dir);
	free(img->name);
	free(img->kernel);
	free(img->initrd);
	free(img->cmdline);
	memset(img, 0, sizeof(*img));
}
