"""This plugin's tests see this plugin and the built-ins, whatever else is installed."""

import os

os.environ["ENGINE_PLUGINS"] = "ordinal"
os.environ.setdefault("HF_HUB_OFFLINE", "1")
