"""The ASGI entry point for `steady web` (uvicorn imports `app` from here)."""

from service.logs import configure_logging
from service.web.app import create_app

configure_logging(json=True)
app = create_app()
