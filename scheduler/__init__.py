"""The scheduler: a worker whose timer calls tick(now) = plan, send due, sweep. Never imports Flask."""
