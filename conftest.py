pytest_plugins = ["flowmancer.testing"]
