"""`python -m webhooks.cli`: the `smshooks` command, as `smshooks run` starts its worker."""

import sys

from webhooks.cli.main import main

sys.exit(main())
