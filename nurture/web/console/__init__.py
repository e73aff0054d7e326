"""The owner console: server-rendered pages under /console/ for the practice owner."""
