import sys

from talkfreq.cli import main

sys.exit(main())
