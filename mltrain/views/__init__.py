"""The read model: what ``mltrain ... --json`` prints and the dashboard's JSON API answers, assembled
once, so both show a run, a model version, an endpoint and an environment with the same fields under
the same names (the dashboard adds only what needs its own trust rules, e.g. asking an endpoint's
server for its input schema).

Views are plain JSON-ready dicts built from the stores' records (``ws.runs``, ``ws.metrics``,
``ws.models``, ``ws.endpoints``, ``ws.environments``, ``ws.data``) plus what is true now: an
endpoint's live state from its deploy target, whether a built environment is still there from its
builder, a sweep's children ranked by its primary metric. This layer sits between the entry points
(cli, ui, api, config) and the lifecycle (runs), so it may read all of those.
"""
