from netviz.cli import main

raise SystemExit(main())
