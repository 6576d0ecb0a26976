/* recipe.h - build recipes: YAML/JSON parsing, validation, sizes, durations */
#ifndef QCTL_RECIPE_H
#define QCTL_RECIPE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "util.h"

/* An allow entry naming a host list of the image: "image:apt". */
#define RECIPE_ALLOW_IMAGE "image:"

/* Larger recipe documents are rejected before parsing. */
#define RECIPE_MAX_BYTES (1024 * 1024)

struct recipe_step {
	char *name;	    /* unique [A-Za-z0-9_.-]{1,64}, not . or .. */
	char *run;	    /* shell script, run by /bin/sh -c in the guest */
	bool fetch;	    /* network: fetch (default network: none) */
	int64_t timeout_ms; /* 0 = no per-step timeout */
};

/* Every value is at most INT64_MAX, so it fits off_t and int64_t. */
struct recipe_limits {
	int64_t wall_time_ms;	  /* default 3600000 (1h), > 0 */
	int64_t cpu_time_ms;	  /* 0 = unlimited (default) */
	int64_t boot_timeout_ms;  /* default 60000, > 0 */
	uint64_t disk;		  /* bytes, default 2G, at least 1M */
	uint64_t log_bytes;	  /* default 64M */
	uint64_t net_bytes;	  /* default 1G */
	uint64_t artifacts_bytes; /* default 1G */
};

/*
 * source: {git: URL, ref: REF}: fetched on the host (gitsrc.h).  Only
 * local repositories: an absolute path (a relative one is taken from the
 * recipe's directory) or a file:/// URL; network URLs are refused.
 */
struct recipe_git {
	char *url;	/* NULL: no git source */
	char *ref;	/* "HEAD" (default), a branch, a tag, refs/..., 40-hex */
	char *where;	/* "NAME:LINE" of the source key, for messages */
};

#define RECIPE_GIT_URL_MAX 4096
#define RECIPE_GIT_REF_MAX 255

/* How steps reach the guest (docs/ssh-transport.md). */
enum {
	RECIPE_TRANSPORT_IMAGE, /* unsaid: the image's */
	RECIPE_TRANSPORT_AGENT, /* the qctl agent over virtio-serial */
	RECIPE_TRANSPORT_SSH,	/* sshd in the guest, qctl-sshbridge */
};

/*
 * cache: {key: NAME, paths: [...], size: SIZE}: a disk kept between
 * builds of one submitter (docs/cache.md); writable only in fetch steps.
 */
struct recipe_cache {
	char *key;	/* NULL: no cache; [A-Za-z0-9._-]{1,64}, not . or .. */
	char **paths;	/* 1..RECIPE_CACHE_PATHS_MAX normalized absolute */
	size_t n_paths;
	uint64_t size;	/* bytes, default 1G, 16M..64G */
};

#define RECIPE_CACHE_PATHS_MAX 16
#define RECIPE_CACHE_PATH_MAX 1024

struct recipe {
	char *path;  /* the recipe file, or NULL when built from buffer/JSON */
	char *image; /* default "minimal"; a name, or an absolute path */
	/* "transport": what the image offers unless said (RECIPE_TRANSPORT_*) */
	int transport;
	int cpus;    /* default 1, 1..64 */
	uint64_t memory; /* bytes, default 512M; at least 64M, at most 64G */
	bool cpus_set;	 /* the recipe said: else the image's default wins */
	bool memory_set;
	char *source;	 /* realpath of an existing directory, or NULL */
	struct recipe_git git; /* or a git repository (then source is NULL) */
	char **env;	 /* "KEY=VALUE"; keys match [A-Za-z_][A-Za-z0-9_]* */
	size_t n_env;
	/* host:port, *.suffix:port, IPv4:port, [IPv6]:port, or
	 * "image:NAME": the image's host list NAME (struct image_hosts) */
	char **allow;
	size_t n_allow;
	struct recipe_limits limits;
	struct recipe_step *steps; /* at least one step */
	size_t n_steps;
	char **artifacts; /* globs relative to /src, no "..", no leading '/' */
	size_t n_artifacts;
	/* keep the VM this long after a failed step, for a shell in it
	 * (0: not at all; at most RECIPE_HOLD_MAX_MS; capped by serve) */
	int64_t hold_ms;
	/* keep the VM this long after its steps, passed or failed, for
	 * sessions in it (GitLab's stages); at most RECIPE_HOLD_MAX_MS, capped
	 * by serve; not with hold_ms */
	int64_t hold_after_ms;
	/* public keys (OpenSSH one-line form) that may open a shell in this
	 * build while it is held (qctl serve --ssh) */
	char **ssh_keys;
	size_t n_ssh_keys;
	struct recipe_cache cache;
};

#define RECIPE_HOLD_MAX_MS (24 * 3600 * 1000LL)
#define RECIPE_SSH_KEYS_MAX 16
#define RECIPE_SSH_KEY_MAX 8192

/* Parse and validate a YAML/JSON recipe file; paths resolve against its dir. */
int recipe_load_file(const char *path, struct recipe **out, struct error *err);

/* Same for a buffer; name is for messages, basedir for paths (NULL: cwd). */
int recipe_load_buffer(const char *buf, size_t len, const char *name,
		       const char *basedir, struct recipe **out,
		       struct error *err);

/* Validate an already parsed JSON object (borrowed; no line numbers). */
int recipe_from_json(json_t *root, const char *name, const char *basedir,
		     struct recipe **out, struct error *err);

/*
 * A client's recipe (qctl serve): the parser touches no file system, so
 * that it cannot tell the client what root can see; "source" must come
 * out absolute and is checked later with the client's rights.
 */
#define RECIPE_NO_FS 0x1u
int recipe_load_buffer_flags(const char *buf, size_t len, const char *name,
			     const char *basedir, unsigned flags,
			     struct recipe **out, struct error *err);
int recipe_from_json_flags(json_t *root, const char *name,
			   const char *basedir, unsigned flags,
			   struct recipe **out, struct error *err);

/* Free a recipe; NULL is fine. */
void recipe_free(struct recipe *r);

static inline void
recipe_freep(struct recipe **r)
{
	recipe_free(*r);
}

#define _cleanup_recipe_ __attribute__((cleanup(recipe_freep)))

/* "512M", "2G", "100k", "1024" (bytes): K/M/G/T, KiB..TiB, k; strict. */
int parse_size(const char *s, uint64_t *out, struct error *err);

/* "90s", "10m", "1h", "500ms", "1h30m", "2d", "90" (seconds) into ms. */
int parse_duration(const char *s, int64_t *out_ms, struct error *err);

/* Check a git source's URL (after joining) and ref: 0 or -EINVAL. */
int recipe_check_git_url(const char *url, struct error *err);
int recipe_check_git_ref(const char *ref, struct error *err);

/* Check a cache path: absolute, normalized, not / nor under the guest's
 * /src, /proc, /sys, /dev, /run; and a safe charset for qctl's commands. */
int recipe_check_cache_path(const char *path, struct error *err);

/* Check an allowlist entry: host:port, *.suffix:port, IPv4:port, [IPv6]:port */
int recipe_check_allow(const char *entry, struct error *err);
/*
 * Check the shape of a public key line, "TYPE BASE64 [COMMENT]": a known
 * key type, base64 of a sane length, a printable comment.  The key itself
 * is parsed only by the confined ssh server (qctl-sshd), never here.
 */
int recipe_check_ssh_key(const char *line, struct error *err);

/*
 * The recipe's YAML reader, for other YAML documents (image definitions):
 * the same limits (one document, no anchors or aliases, nested at most 16
 * deep, NUL bytes and UTF-8 checked; YAML 1.1 plain scalars read as null,
 * booleans and decimal integers only) and each node's line.
 */
struct yaml_doc {
	json_t *root;
	struct lines *lines;
};
int yaml_doc_load(const char *buf, size_t len, const char *name,
		  struct yaml_doc *doc, struct error *err);
/* The line of (parent, key), or of (parent, index) when key is NULL: the
 * key's own line if at_key, else its value's; 0 when not known. */
int yaml_doc_line(const struct yaml_doc *doc, const json_t *parent,
		  const char *key, size_t index, bool at_key);
void yaml_doc_free(struct yaml_doc *doc);
/* Untrusted text escaped for a message, cut at 64 bytes, into buf. */
#define YAML_QUOTE_BUF (64 * 4 + 4)
const char *yaml_quote(char *buf, const char *s);
/* A JSON value's type in words ("a mapping", "a list", "a string", ...). */
const char *json_type_name(const json_t *v);

#endif
