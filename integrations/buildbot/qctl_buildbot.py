"""Buildbot steps that run a qctl recipe on the worker (Buildbot 3.7+).

In master.cfg:

    import sys
    sys.path.insert(0, "/path/to/qctl/integrations/buildbot")  # this dir
    from qctl_buildbot import QctlRun, qctl_steps
    factory = util.BuildFactory(qctl_steps("qctl.yaml"))

QctlRun runs `qctl run --json --artifacts DIR RECIPE` in the build's
workdir; the step's output (qctl's progress and the guest's step lines,
on stderr) streams into the stdio log, the result JSON (stdout) is kept
as the log "result.json" and read into properties.  qctl's exit code
decides the result (integrations/buildbot/README.md):

    0 SUCCESS, 1 FAILURE, 3 FAILURE "limit exceeded: REASON",
    2 EXCEPTION "recipe error: ...", 4 EXCEPTION "infrastructure error: ...",
    130 CANCELLED; anything else EXCEPTION.
"""

import json
import os

from twisted.internet import defer

from buildbot.plugins import util
from buildbot.process import buildstep, logobserver
from buildbot.process.results import (CANCELLED, EXCEPTION, FAILURE,
                                      SUCCESS)
from buildbot.steps.transfer import DirectoryUpload

# qctl's exit code -> (Buildbot result, the summary's first words)
EXIT_MAP = {
    0: (SUCCESS, "passed"),
    1: (FAILURE, "failed"),
    2: (EXCEPTION, "recipe error"),
    3: (FAILURE, "limit exceeded"),
    4: (EXCEPTION, "infrastructure error"),
    130: (CANCELLED, "cancelled"),
}

# where the artifacts land on the worker, under the step's workdir
ARTIFACTS_DIR = "qctl-artifacts"


class _LastErrLine(logobserver.LogLineObserver):
    """The last non-empty stderr line: qctl's reason when it printed no
    result (a usage error, a recipe it refused before any build)."""
    last = ""

    def errLineReceived(self, line):
        if line.strip():
            self.last = line.strip()


class QctlRun(buildstep.ShellMixin, buildstep.CommandMixin,
              buildstep.BuildStep):
    """Run one qctl recipe; properties qctl_status, qctl_exit_code,
    qctl_reason, qctl_limit (3 only) and qctl_artifacts (a count)."""

    name = "qctl"
    renderables = ["recipe", "qctl", "artifacts", "extra_args"]

    def __init__(self, recipe="qctl.yaml", qctl="qctl",
                 artifacts=ARTIFACTS_DIR, extra_args=(), **kwargs):
        # qctl enforces the recipe's own limits (wall_time, ...): no
        # Buildbot silence timeout by default.  A stopped build sends
        # SIGTERM, on which qctl tears its VM down and prints its result
        # (exit 130); SIGKILL only after sigtermTime.  (With
        # interruptSignal alone the worker closes the pipes at once and
        # the result is lost; a bare SIGKILL leaves the VM to `qctl gc`.)
        kwargs.setdefault("timeout", None)
        kwargs.setdefault("sigtermTime", 60)
        kwargs.setdefault("logEnviron", False)
        kwargs = self.setupShellMixin(kwargs, prohibitArgs=["command"])
        super().__init__(**kwargs)
        self.recipe = recipe
        self.qctl = qctl
        self.artifacts = artifacts
        self.extra_args = extra_args
        self.summary = None
        self.last_err = _LastErrLine()
        self.addLogObserver("stdio", self.last_err)

    @defer.inlineCallbacks
    def run(self):
        # the previous build's artifacts must not pass for this one's
        # (rmdir's path is the worker's builder directory's, the shell's
        # the workdir's: self.workdir is the build's unless set)
        yield self.runRmdir(os.path.join(self.workdir, self.artifacts))
        cmd = yield self.makeRemoteShellCommand(
            collectStdout=True,
            command=[self.qctl, "run", "--json", "--artifacts",
                     self.artifacts] + list(self.extra_args) + [self.recipe])
        yield self.runCommand(cmd)

        rc = cmd.rc
        if rc is None:      # never started, or the worker went away
            return CANCELLED if self.stopped else EXCEPTION
        result, words = EXIT_MAP.get(rc, (EXCEPTION, "qctl exited %s" % rc))
        res = None
        try:
            res = json.loads(cmd.stdout)
        except ValueError:
            pass    # no result: a usage error before the build, or worse
        if not isinstance(res, dict):
            res = None
        if res is not None:
            yield self.addCompleteLog("result.json",
                                      json.dumps(res, indent=2) + "\n")
        reason = (res or {}).get("reason") or ""
        if not reason and rc != 0:
            reason = self.last_err.last[:200] or "see stdio"
        status = (res or {}).get("status") or words
        limit = (res or {}).get("limit") or {}
        src = "qctl"
        self.setProperty("qctl_exit_code", rc, src)
        self.setProperty("qctl_status", status, src)
        self.setProperty("qctl_reason", reason, src)
        self.setProperty("qctl_artifacts",
                         len((res or {}).get("artifacts") or []), src)
        if rc == 3:
            self.setProperty("qctl_limit", limit.get("name", ""), src)
        self.summary = words + (": " + reason if reason and rc else "")
        return result

    def getCurrentSummary(self):
        return {"step": "qctl run %s" % self.recipe}

    def getResultSummary(self):
        if self.summary is None:
            return super().getResultSummary()
        # a failure's summary is the build's too: the limit shows there
        if self.results == SUCCESS:
            return {"step": self.summary}
        return {"step": self.summary, "build": self.summary}


def _had_artifacts(step):
    return step.getProperty("qctl_artifacts", 0) > 0


def qctl_steps(recipe="qctl.yaml", artifacts_dest=None, **kwargs):
    """[QctlRun(recipe), an upload of its artifacts to the master].

    artifacts_dest is a directory on the master (relative to its basedir),
    by default artifacts/BUILDERNAME/BUILDNUMBER; the upload runs when the
    build produced artifacts, failed builds included."""
    if artifacts_dest is None:
        artifacts_dest = util.Interpolate(
            "artifacts/%(prop:buildername)s/%(prop:buildnumber)s")
    artifacts = kwargs.pop("artifacts", ARTIFACTS_DIR)
    return [
        QctlRun(recipe=recipe, artifacts=artifacts, **kwargs),
        DirectoryUpload(workersrc=artifacts, masterdest=artifacts_dest,
                        workdir=kwargs.get("workdir"),
                        name="qctl artifacts", doStepIf=_had_artifacts),
    ]
