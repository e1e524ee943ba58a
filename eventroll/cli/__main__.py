import sys

from eventroll.cli import main

sys.exit(main())
