"""The suite never reaches the hub and never loads whatever third-party plugins happen to be installed."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ["ENGINE_PLUGINS"] = ""
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# The data cache of the whole session lives in a temporary folder: nothing of the user's is read or written.
if "ENGINE_CACHE" not in os.environ:
    import tempfile

    os.environ["ENGINE_CACHE"] = tempfile.mkdtemp(prefix="engine-test-cache-")
