"""No-code deployment: a registered model served as an authenticated web service.

A deploy target (``conf/deploy/*.yaml``: :class:`~mltrain.deploy.local.LocalTarget`,
:class:`~mltrain.deploy.docker.DockerTarget`) runs the scoring server (:mod:`mltrain.serving`) in the
model's own environment plus the server's requirements. :func:`mltrain.deploy.service.deploy` runs the
named steps of :mod:`mltrain.deploy.steps`: build that environment, lay out the endpoint folder
(``<workspace>/endpoints/<name>``: config, model, keys, log), start the server through the target,
wait until it is ready and record the endpoint in the workspace.
"""
