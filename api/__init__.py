"""The fer REST API: `create_app(settings)` builds the FastAPI application.

fer serve --port 8000                          # or, the same app under plain uvicorn:
uvicorn --factory api:create_app --port 8000
"""

from api.app import create_app

__all__ = ["create_app"]
