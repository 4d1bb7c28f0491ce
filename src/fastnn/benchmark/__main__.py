"""python -m fastnn.benchmark: the benchmark's command line."""
from .cli import main

raise SystemExit(main())
