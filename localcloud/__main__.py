"""``python -m localcloud``: the same as ``python -m localcloud.launcher``."""

import sys

from localcloud.launcher import main

sys.exit(main())
