"""``python -m nbfl.participant``: a client, as ``nbfl client`` starts one."""

import sys

from .command import main

if __name__ == "__main__":
    sys.exit(main())
