"""`engine serve`: a trained model behind HTTP (FastAPI and uvicorn, the ``serve`` extra).

A request's inputs are checked and tokenized off the event loop (``model``), wait in a queue, and run in batches
that the model's streams (threads sharing the model) form by length under a token budget (``batching``); the
records are those of `engine predict`. ``schema`` is the HTTP API (requests, responses, errors), ``app`` its
routes, admission and draining, ``metrics`` what ``/metrics`` exposes, ``settings`` the command's knobs, ``memory``
the allocator kept flat, ``server`` the uvicorn process (or processes) and SIGTERM. docs/serving.md is the user's
guide.
"""
