from personabid.cli import main

raise SystemExit(main())
