"""The sweep core: one parent run and a child run per trial (``python -m mltrain -m``).

Hydra's side (the plugins in plugins/hydra_plugins/ call :mod:`.launcher`, which composes trials with
:mod:`.compose`) hands the app's entry point (:mod:`.entry`) a sweep; :mod:`.session` records it and
prepares its trials, :mod:`.scheduler` starts them, :mod:`.monitor` follows them, :mod:`.progress`
shows them. :mod:`.search` and :mod:`.space` decide which trials run; :mod:`.policies` stops
children early; :mod:`.trials` and :mod:`.settings` are what these parts hand each other.
"""
