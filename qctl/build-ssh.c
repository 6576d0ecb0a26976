/*
 * build-ssh.c - a build's ssh transport, for images whose guest runs
 * sshd and no qctl agent (image.json "transport": "ssh"; see
 * docs/ssh-transport.md).
 *
 * Per build: an ed25519 host key and client key, made here and never
 * reused.  The guest gets the host key, the client's public key and its
 * address as files on its scratch disk (the overlay's upper layer, made
 * by mkfs.ext4 -d from RUNDIR/ssh-seed), so that they appear under
 * /etc/qctl/ssh in its root.  Per boot: qctl-sshbridge, exec'd as nobody
 * inside the builder's network namespace, given the host's public key to
 * pin and the client's private key on its socket; that socket is then the
 * manager's agent channel, used exactly as the virtio-serial one.
 */
#include "build-int.h"

#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <libssh/libssh.h>

#include "child.h"
#include "privs.h"
#include "rundir.h"
#include "sshbridge-proto.h"
#include "state.h"

#define SEED_DIR "ssh-seed"
#define SSH_PORT 22
/* The bridge tries a little longer than the boot timeout: the manager's
 * own deadline (and its one retry on a fresh VM) comes first. */
#define BRIDGE_CONNECT_SLACK_MS 5000

static void
free_secret(char **p)
{
	if (*p) {
		explicit_bzero(*p, strlen(*p));
		ssh_string_free_char(*p);
	}
	*p = NULL;
}

/* One file of the seed, written in full; mode is exact. */
static int
seed_file(int dfd, const char *name, mode_t mode, const char *text,
	  struct error *err)
{
	int fd = openat(dfd, name,
			O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW,
			mode);

	if (fd < 0)
		return error_sys(err, errno, "%s", name);
	if (fchmod(fd, mode) < 0 || write_in_full(fd, text, strlen(text)) < 0) {
		int e = errno;

		close(fd);
		return error_sys(err, e, "%s", name);
	}
	close(fd);
	return 0;
}

/* RUNDIR/ssh-seed/upper/etc/qctl/ssh, each directory made here. */
static int
seed_dirs(int dir_fd, int *out, struct error *err)
{
	static const struct {
		const char *name;
		mode_t mode;
	} dirs[] = {
		{SEED_DIR, 0700}, {"upper", 0755}, {"etc", 0755},
		{"qctl", 0755},	  {"ssh", 0700},
	};
	int fd = dir_fd;

	for (size_t i = 0; i < ARRAY_SIZE(dirs); i++) {
		int next;

		if (mkdirat(fd, dirs[i].name, dirs[i].mode) < 0 &&
		    !(errno == EEXIST && i == 0))
			goto fail;
		next = openat(fd, dirs[i].name,
			      O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (next < 0)
			goto fail;
		/* the umask does not decide what sshd's StrictModes sees */
		if (fchmod(next, dirs[i].mode) < 0) {
			close(next);
			goto fail;
		}
		if (fd != dir_fd)
			close(fd);
		fd = next;
		continue;
	fail:
		if (fd != dir_fd)
			close(fd);
		return error_sys(err, errno, "%s/%s", SEED_DIR, dirs[i].name);
	}
	*out = fd;
	return 0;
}

/* A fresh ed25519 key. */
static int
new_key(ssh_key *k, struct error *err)
{
	if (ssh_pki_generate(SSH_KEYTYPE_ED25519, 0, k) != SSH_OK)
		return error_set(err, EIO, "ssh: cannot make an ed25519 key");
	return 0;
}

int
build_ssh_prepare(struct build *b, struct error *err)
{
	ssh_key host = NULL, client = NULL;
	char *host_priv = NULL, *client_pub = NULL;
	_cleanup_free_ char *auth = NULL, *addr = NULL;
	int dfd = -1, r;

	r = new_key(&host, err);
	if (r == 0)
		r = new_key(&client, err);
	if (r == 0 &&
	    (ssh_pki_export_privkey_base64(host, NULL, NULL, NULL,
					   &host_priv) != SSH_OK ||
	     ssh_pki_export_pubkey_base64(host, &b->ssh_host_pub) != SSH_OK ||
	     ssh_pki_export_privkey_base64(client, NULL, NULL, NULL,
					   &b->ssh_client_key) != SSH_OK ||
	     ssh_pki_export_pubkey_base64(client, &client_pub) != SSH_OK))
		r = error_set(err, EIO, "ssh: cannot export the build's keys");
	if (r == 0)
		r = seed_dirs(b->dir_fd, &dfd, err);
	if (r == 0) {
		/* from the bridge's address only, no forwarding of any
		 * kind: the key is of no use elsewhere even if it leaked */
		auth = xasprintf("from=\"%s\",restrict,pty ssh-ed25519 %s "
				 "qctl-build\n",
				 NETNS_HOST_IP, client_pub);
		r = seed_file(dfd, "host_key", 0600, host_priv, err);
	}
	if (r == 0)
		r = seed_file(dfd, "authorized_keys", 0600, auth, err);
	if (r == 0) {
		addr = xasprintf("%s/%d\n", NETNS_GUEST_IP, NETNS_PREFIX);
		r = seed_file(dfd, "address", 0644, addr, err);
	}
	if (r < 0)
		error_prefix(err, "ssh transport");
	if (dfd >= 0)
		close(dfd);
	free_secret(&host_priv);
	ssh_string_free_char(client_pub);
	ssh_key_free(host);
	ssh_key_free(client);
	return r;
}

char *
build_ssh_seed_path(const struct build *b)
{
	return xasprintf("%s/" SEED_DIR, b->run_dir);
}

/* The configuration frame (sshbridge-proto.h), queued before the fork. */
static int
send_config(struct build *b, int fd, struct error *err)
{
	const char *addr = NETNS_GUEST_IP;
	size_t n = 12 + strlen(addr) + 1 + strlen(b->ssh_host_pub) + 1 +
		   strlen(b->ssh_client_key) + 1;
	unsigned char *f = xcalloc(1, AGENT_HDR_SIZE + n), *p;
	struct agent_hdr h = {.len = n, .type = SSHBRIDGE_CONFIG};
	int64_t ms =
		b->recipe->limits.boot_timeout_ms + BRIDGE_CONNECT_SLACK_MS;
	int r = 0;

	if (n > AGENT_MAX_PAYLOAD)
		r = error_set(err, EINVAL, "ssh: configuration too large");
	if (r == 0) {
		agent_hdr_encode(f, &h);
		p = f + AGENT_HDR_SIZE;
		agent_put_u32(p, SSHBRIDGE_VERSION);
		agent_put_u32(p + 4, ms > UINT32_MAX / 2 ? UINT32_MAX / 2 : ms);
		agent_put_u32(p + 8, SSH_PORT);
		p += 12;
		memcpy(p, addr, strlen(addr) + 1);
		p += strlen(addr) + 1;
		memcpy(p, b->ssh_host_pub, strlen(b->ssh_host_pub) + 1);
		p += strlen(b->ssh_host_pub) + 1;
		memcpy(p, b->ssh_client_key, strlen(b->ssh_client_key) + 1);
		if (send(fd, f, AGENT_HDR_SIZE + n,
			 MSG_DONTWAIT | MSG_NOSIGNAL) !=
		    (ssize_t)(AGENT_HDR_SIZE + n))
			r = error_sys(err, errno,
				      "ssh: queueing the bridge's "
				      "configuration");
	}
	explicit_bzero(f, AGENT_HDR_SIZE + n);
	free(f);
	return r;
}

/* Between fork and exec: into the builder's namespace, nobody, exec. */
static void __attribute__((noreturn))
bridge_child(const char *path, int ns_fd, int fd, pid_t ppid, uid_t uid,
	     gid_t gid)
{
	char *const argv[] = {(char *)"qctl-sshbridge", NULL};
	char *const envp[] = {NULL};
	int fds[1] = {fd};
	struct child_fds cf = {
		.in = -1,
		.out = -1,
		.err = -1,
		.fds = fds,
		.n = 1,
		.first = SSHBRIDGE_FD,
		.errpipe = -1,
	};

	/* Its sockets are born in the builder's namespace: the tap to the
	 * guest is all it can reach, and nftables there lets it reach
	 * only the guest's port 22. */
	if (setns(ns_fd, CLONE_NEWNET) < 0)
		_exit(127);
	if (child_setup(&cf, NULL) < 0)
		_exit(127);
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != ppid)
		_exit(127);
	/* It parses the guest's bytes: nobody, no capability, no group,
	 * no_new_privs, all read back. */
	if (uid && privs_drop_to(uid, gid, NULL, 0) < 0)
		_exit(127);
	/* changing ids cleared the death signal */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != ppid)
		_exit(127);
	/* an empty environment: nothing of the manager's reaches it */
	execve(path, argv, envp);
	_exit(127);
}

int
build_ssh_start(struct build *b, struct error *err)
{
	_cleanup_free_ char *path =
		helper_path("QCTL_SSHBRIDGE", "qctl-sshbridge");
	uid_t uid = 0;
	gid_t gid = 0;
	pid_t self = getpid();
	int sv[2], r;

	if (geteuid() == 0) {
		struct passwd *pw = getpwnam("nobody");
		struct group *gr = getgrnam("nogroup");

		if (!gr)
			gr = getgrnam("nobody");
		if (!pw || !pw->pw_uid || !gr || !gr->gr_gid)
			return error_set(err, ENOENT,
					 "ssh: no user nobody "
					 "and group nogroup for the bridge");
		uid = pw->pw_uid;
		gid = gr->gr_gid;
	}
	if (access(path, X_OK) < 0)
		return error_sys(err, errno, "ssh: %s", path);
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return error_sys(err, errno, "ssh: socketpair");
	r = send_config(b, sv[0], err);
	if (r < 0) {
		close(sv[0]);
		close(sv[1]);
		return r;
	}
	b->bridge_pid = fork();
	if (b->bridge_pid < 0) {
		r = error_sys(err, errno, "ssh: fork");
		close(sv[0]);
		close(sv[1]);
		b->bridge_pid = -1;
		return r;
	}
	if (b->bridge_pid == 0)
		bridge_child(path, b->ns.fd, sv[1], self, uid, gid);
	close(sv[1]);
	b->bridge_fd = sv[0];
	state_note_pid(b->state, "sshbridge", b->bridge_pid);
	build_say(b, 2, "ssh transport: bridge pid %d", (int)b->bridge_pid);
	return 0;
}

void
build_ssh_stop(struct build *b)
{
	if (b->bridge_pid > 0) {
		kill(b->bridge_pid, SIGKILL);
		while (waitpid(b->bridge_pid, NULL, 0) < 0 && errno == EINTR)
			;
	}
	b->bridge_pid = -1;
	if (b->bridge_fd >= 0)
		close(b->bridge_fd);
	b->bridge_fd = -1;
}

void
build_ssh_free(struct build *b)
{
	build_ssh_stop(b);
	free_secret(&b->ssh_client_key);
	ssh_string_free_char(b->ssh_host_pub);
	b->ssh_host_pub = NULL;
}
