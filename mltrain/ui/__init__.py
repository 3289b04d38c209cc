"""``mltrain ui``: a web dashboard over the workspace (Starlette on uvicorn) and its JSON API.

Reads go through the workspace's store classes; pages are static files (plain JS, vendored uPlot)
that call the API under ``/api``. Read-only unless started with ``--allow-write``; write actions
need the token.
"""
