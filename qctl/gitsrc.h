/* gitsrc.h - source: {git: URL, ref: REF}: a fetch on the host, as the
 * submitter, into the run directory */
#ifndef QCTL_GITSRC_H
#define QCTL_GITSRC_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "loop.h"
#include "recipe.h"
#include "util.h"

struct peer_creds;

/* In the run directory: the fetch's whole work area, removed at the end. */
#define GITSRC_DIR "git"
/* In GITSRC_DIR: the repository (never sent) and the checked-out tree. */
#define GITSRC_REPO "repo.git"
#define GITSRC_TREE "tree"
/* The one git that is run: Debian's. */
#define GITSRC_GIT "/usr/bin/git"
/* What of git's stderr reaches a message (sanitized). */
#define GITSRC_MSG_MAX 300
/* `qctl __peer git` exits so when the recipe is at fault (no such
 * repository or ref): qctl exits 2, like any other recipe error. */
#define GITSRC_EXIT_RECIPE 3

struct gitsrc;
/* The fetch ended (gitsrc_result says how); called from the loop. */
typedef void (*gitsrc_done_fn)(struct gitsrc *g, void *opaque);

/*
 * Fetch git->url and check out git->ref into GITSRC_DIR of the run
 * directory dir_fd (borrowed: it must outlive g; its path run_dir): a child
 * (`qctl __peer git`, with creds' rights; NULL: ours) that runs git
 * without a shell, with no configuration but ours, no hooks, no
 * submodules, no network transport.  It is killed with everything it
 * started after timeout_ms.  done is called once, later, from the loop.
 * On failure nothing is left (no child, no directory) and *out is NULL.
 */
int gitsrc_start(struct loop *loop, const struct recipe_git *git, int dir_fd,
		 const char *run_dir, const struct peer_creds *creds,
		 int64_t timeout_ms, gitsrc_done_fn done, void *opaque,
		 struct gitsrc **out, struct error *err);
/*
 * Once done was called: 0 (the commit is checked out), or -1 with err
 * naming the recipe's source and *recipe_fault set when the recipe is to
 * blame (the repository cannot be read, the ref does not exist).
 */
int gitsrc_result(const struct gitsrc *g, struct error *err,
		  bool *recipe_fault);
/* The commit checked out (hex), or NULL before a successful end. */
const char *gitsrc_commit(const struct gitsrc *g);
/* {"git": URL, "ref": REF, "commit": HEX or null} for the result. */
json_t *gitsrc_to_json(const struct gitsrc *g);
/* Pass an fd of the checked-out tree over sock (`qctl __peer pack-fd`). */
int gitsrc_send_tree(const struct gitsrc *g, int sock, struct error *err);
/* Kill the child (if any) and remove GITSRC_DIR; NULL is fine. */
void gitsrc_free(struct gitsrc *g);

/*
 * `qctl __peer git URL REF`, the child (see cmd-peer.c): in its working
 * directory (GITSRC_DIR) fetches, checks out, sends the commit id on
 * chan_fd.  Returns its exit code; messages on status_fd.
 */
int gitsrc_peer_main(const char *url, const char *ref, int chan_fd,
		     int status_fd);

/* In a peer child: the directory fd the manager passed on chan_fd (one
 * byte and SCM_RIGHTS), or -1. */
int gitsrc_recv_dir(int chan_fd);

/* ---- pure helpers (unit tests) ---- */

/* A full commit id: 40 (SHA-1) or 64 (SHA-256) lowercase hex digits. */
bool gitsrc_is_commit_id(const char *s, size_t n);
/*
 * git's stderr for a one-line message: controls and invalid bytes become
 * spaces, runs of space one, "hint:" lines dropped, cut at cap - 1 bytes
 * (with "..." when cut).  out is NUL-terminated.
 */
void gitsrc_sanitize(const char *in, size_t n, char *out, size_t cap);
/*
 * The local refs (in the fetched repository) that ref may name, in
 * the order they are tried; NULL-terminated, at most 3, malloc'd.
 */
char **gitsrc_candidates(const char *ref);

#endif
