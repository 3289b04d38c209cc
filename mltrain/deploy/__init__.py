"""No-code deployment: a registered model served as an authenticated web service.

A deploy target (``conf/deploy/*.yaml``: :class:`~mltrain.deploy.local.LocalTarget`,
:class:`~mltrain.deploy.docker.DockerTarget`) runs the scoring server (:mod:`mltrain.serving`) in the
model's own environment plus the server's requirements; :mod:`mltrain.deploy.service` builds that
environment, lays out the endpoint folder (``<workspace>/endpoints/<name>``: config, model, keys, log),
starts the server, waits until it is ready and records the endpoint in the workspace.
"""
