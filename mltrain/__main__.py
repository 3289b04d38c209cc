"""``python -m mltrain [overrides]``: compose the Hydra config and run the job it describes."""

import sys

from mltrain.config.app import main

if __name__ == "__main__":
    sys.exit(main())
