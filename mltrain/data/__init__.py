"""Data assets: versioned files and folders, stored in a datastore or referenced where they are.

``create`` records a version (a manifest of every file's path, size and sha256 or store checksum,
and one digest over it); ``resolve`` finds one from ``data:NAME[:VERSION|@ALIAS]``; ``download``
writes one to a folder, verified while streaming; ``check`` compares a version with its source.
The records live in the workspace (``ws.data``); the bytes in a datastore
(``mltrain.workspace.datastores``).
"""
