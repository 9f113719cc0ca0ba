from compose_rollback.plugin import main

raise SystemExit(main())
