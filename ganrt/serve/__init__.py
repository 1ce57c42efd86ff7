"""``ganrt serve``: the models as an HTTP API (FastAPI on uvicorn, extra ``serve``) with dynamic batching,
Prometheus metrics and a web page.

``config`` (the frozen settings) and ``batching`` (asyncio + the lanes) import without FastAPI; ``app`` needs it.
"""
