"""``python -m backend`` is the ``audio-cppn`` command."""

from backend.cli import main

raise SystemExit(main())
