"""Web pages (server-rendered, zh-CN first, ``?lang=en`` for English)."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from kangqiao import __version__
from kangqiao.web.i18n import language_of, translator

router = APIRouter(include_in_schema=False)
templates = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=select_autoescape(["html"]),
)


@router.get("/", response_class=HTMLResponse)
async def home(request: Request) -> HTMLResponse:
    lang = language_of(request)
    html = templates.get_template("home.html").render(
        t=translator(lang), lang=lang, version=__version__,
        fhir_base=str(request.base_url).rstrip("/") + "/fhir")
    return HTMLResponse(html)
