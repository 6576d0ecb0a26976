"""A stand-in for buildbot-www's "base" plugin: Buildbot's HTTP API
(/api/v2: REST and JSON-RPC) without the web UI.

Buildbot refuses to start its web server without a "base" plugin, and
Debian 12 packages Buildbot 3.7 without buildbot-www.  With this directory
on the master's PYTHONPATH, c['www'] = {'port': ...} serves the API; "/"
is a one-line page.  Not for a master that has buildbot-www installed.
"""
from buildbot.www.plugin import Application

ep = Application(__name__, "qctl: Buildbot's API without the web UI")
