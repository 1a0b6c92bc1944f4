"""Pages for people: the live demo at `/` and the API docs (`/docs`, `/redoc`), all served
from files shipped in the package so that they work with no network."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.staticfiles import StaticFiles
from starlette.responses import FileResponse, HTMLResponse

STATIC = Path(__file__).resolve().parent.parent / "static"
_VENDOR = "/static/vendor"

router = APIRouter(include_in_schema=False)


@router.get("/")
async def demo() -> FileResponse:
    return FileResponse(STATIC / "demo.html", media_type="text/html")


@router.get("/docs")
async def swagger_ui() -> HTMLResponse:
    return get_swagger_ui_html(
        openapi_url="/openapi.json",
        title="seqserve - Swagger UI",
        swagger_js_url=f"{_VENDOR}/swagger-ui/swagger-ui-bundle.js",
        swagger_css_url=f"{_VENDOR}/swagger-ui/swagger-ui.css",
        swagger_favicon_url=f"{_VENDOR}/swagger-ui/favicon-32x32.png",
        # no "Try it out" validator badge: it would call an outside service
        swagger_ui_parameters={"validatorUrl": None, "persistAuthorization": True},
    )


@router.get("/redoc")
async def redoc() -> HTMLResponse:
    return get_redoc_html(
        openapi_url="/openapi.json",
        title="seqserve - ReDoc",
        redoc_js_url=f"{_VENDOR}/redoc/redoc.standalone.js",
        redoc_favicon_url=f"{_VENDOR}/swagger-ui/favicon-32x32.png",
        with_google_fonts=False,
    )


def install(app: FastAPI) -> None:
    """The pages' routes and `/static` (demo assets, its CO2 data, vendored docs assets)."""
    app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
