"""The web app: one blueprint per concern (webhooks, dashboard pages, health)."""
