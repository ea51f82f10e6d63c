"""The suite never reaches the hub and never loads whatever third-party plugins happen to be installed."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ["ENGINE_PLUGINS"] = ""
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
