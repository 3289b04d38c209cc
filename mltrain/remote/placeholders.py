"""``${inputs.NAME}`` / ``${outputs.NAME}``: the placeholder of where a job's input or output is on the
node that runs it. Its own module (standard library only) so that composing a config, which checks
placeholders, does not import the data path (:mod:`mltrain.remote.inputs` substitutes them)."""

from __future__ import annotations

import re

PLACEHOLDER = re.compile(r"\$\{(inputs|outputs)\.([^{}]*)\}")
