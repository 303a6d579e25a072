"""The ASGI entry point for `steady web` (uvicorn imports `app` from here)."""

from service.logs import configure_logging
from service.settings import get_settings
from service.web.app import create_app

# Each uvicorn worker process imports this module: it configures its own logging.
configure_logging(json=True, level=get_settings().log_level)
app = create_app()
