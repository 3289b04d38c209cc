"""Put the user's project ``conf/`` before mltrain's bundled configs, and mltrain's typed target schemas
(``mltrain-schema://``) after them, for mltrain's app only."""

from __future__ import annotations

import os

from hydra.core.config_search_path import ConfigSearchPath, SearchPathQuery
from hydra.plugins.search_path_plugin import SearchPathPlugin

PROJECT_CONF_ENV = "MLTRAIN_PROJECT_CONF"


class MltrainProjectSearchPath(SearchPathPlugin):
    """Prepend ``$MLTRAIN_PROJECT_CONF`` (default ``./conf``) when the primary path is mltrain's."""

    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        from mltrain.bundled import bundled_dir

        ours = os.path.realpath(bundled_dir("conf"))
        main = [e for e in search_path.get_path() if e.provider == "main"]
        if not main or os.path.realpath(main[0].path.removeprefix("file://")) != ours:
            return
        search_path.append("mltrain", "mltrain-schema://")  # typed target schemas, made on demand
        project = os.path.abspath(os.environ.get(PROJECT_CONF_ENV) or "conf")
        if os.path.isdir(project) and os.path.realpath(project) != ours:
            search_path.prepend("mltrain-project", f"file://{project}", anchor=SearchPathQuery(provider="main"))
