"""Hydra search-path plugin: a user's own ``conf/`` extends and overrides mltrain's configs."""
