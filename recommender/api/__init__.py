"""The HTTP API (FastAPI): ``recommender.api.app.create_app``; run by ``python -m recommender serve``."""
