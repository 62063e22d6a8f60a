"""Business logic. Functions take a session and `now`; they never read the clock or Flask."""
