"""The live view of a run in the browser (``--ui``): a plugin in the runner, a server in a helper process."""
