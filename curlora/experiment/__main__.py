import sys

from curlora.experiment.cli import main

sys.exit(main())
