"""Optional Flowmancer plugins, loaded only when asked for (``-p flowmancer_contrib.<name>``)."""
