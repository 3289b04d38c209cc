"""``python -m mltrain.serving CONFIG.json``: run the scoring server until SIGTERM/SIGINT."""

import sys

from mltrain.serving.supervisor import main

sys.exit(main())
