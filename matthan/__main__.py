from matthan.cli import main

raise SystemExit(main())
