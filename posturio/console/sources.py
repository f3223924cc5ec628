"""Console page for Navigator's sources: propose (any member; folders from the tenant's
grants), approve / pause / resume / revoke with a reason (admins), upload files to an
upload source (members while it is proposed, admins after), sync now, and each source's
progress and failed documents. Members see only sources they may read."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, get, post
from litestar.datastructures import UploadFile
from litestar.middleware import DefineMiddleware
from litestar.params import FromPath
from litestar.response import Redirect, Template

from posturio.console.frame import ConsoleController, flash, page
from posturio.navigator import grants, sources
from posturio.navigator.api import UPLOAD_CEILING, upload_limit
from posturio.navigator.models import Document
from posturio.navigator.tasks import purge_source, sync_source
from posturio.platform.dependencies import Caller, Db
from posturio.platform.errors import Conflict, PosturioError
from posturio.platform.jobs.outbox import defer
from posturio.platform.models import Role
from posturio.platform.repository import scoped

FORM_OVERHEAD = 64 * 1024


def _source_in(name: str, kind: str, config: dict[str, Any]) -> sources.SourceIn:
    """The form's fields checked like the API's body (a blank name or an unknown kind is
    refused, not stored)."""
    try:
        return msgspec.convert({"name": name, "kind": kind, "config": config}, sources.SourceIn)
    except msgspec.ValidationError as exc:
        raise PosturioError(f"invalid source: {exc}", code="invalid_source") from None


async def _allowed(db: Db, principal: Caller, exc: PosturioError) -> str:
    """For a refused path: the folders a directory source may lie in, by name."""
    if exc.code != "path_not_allowed":
        return ""
    folders = [g.path for g in await grants.listing(db, principal.tenant_id)]
    if not folders:
        return ". The operator has granted no folder to this tenant yet."
    return f". Allowed folders: {', '.join(folders)}."


class SourcesPage(ConsoleController):
    path = "/console/sources"

    @get("/")
    async def listing(self, request: Request[Any, Any, Any], db: Db, principal: Caller) -> Template:
        rows = await sources.listing(db, principal)
        failed = {
            s.id: (
                await db.scalars(
                    scoped(Document, principal.tenant_id)
                    .where(Document.source_id == s.id, Document.status == "failed")
                    .order_by(Document.uri)
                    .limit(20)
                )
            ).all()
            for s in rows
        }
        return await page(
            request,
            db,
            principal,
            "console/sources.html",
            active="Sources",
            sources=rows,
            failed=failed,
            folders=await grants.listing(db, principal.tenant_id),
            can_approve=principal.at_least(Role.admin),
            max_file_bytes=request.app.state.settings.navigator_max_file_bytes,
        )

    @post("/", status_code=303)
    async def propose(self, request: Request[Any, Any, Any], db: Db, principal: Caller) -> Redirect:
        form = await request.form()
        kind = str(form.get("kind") or "directory")
        config = {"path": str(form.get("path") or "")} if kind == "directory" else {}
        try:
            async with db.begin_nested():  # a refusal keeps none of it
                data = _source_in(str(form.get("name") or "").strip(), kind, config)
                await sources.propose(db, principal, request.app.state.settings, data)
                flash(request, f"Source {data.name!r} proposed; an admin approves it.")
        except PosturioError as exc:
            flash(request, f"Not proposed: {exc.message}{await _allowed(db, principal, exc)}")
        return Redirect("/console/sources", status_code=303)

    @post("/{source_id:str}", status_code=303)
    async def act(
        self, request: Request[Any, Any, Any], db: Db, principal: Caller, source_id: FromPath[str]
    ) -> Redirect:
        form = await request.form()
        action = str(form.get("action") or "")
        try:
            async with db.begin_nested():  # a refusal keeps none of it
                if action in sources.TRANSITIONS:
                    source = await sources.transition(
                        db,
                        principal,
                        source_id,
                        sources.TransitionIn(action, str(form.get("reason") or "")),  # type: ignore[arg-type]
                    )
                    if source.status == "approved":
                        defer(db, sync_source, str(principal.tenant_id), str(source.id))
                    elif source.status == "revoked":
                        defer(db, purge_source, str(principal.tenant_id), str(source.id))
                    message = f"Source {source.name!r} is now {source.status}."
                elif action == "sync":
                    source = await sources.get(db, principal, source_id)
                    if source.status != "approved":
                        raise Conflict(
                            f"only an approved source is synced (this one is {source.status})"
                        )
                    defer(db, sync_source, str(principal.tenant_id), str(source.id))
                    message = "Sync queued."
                else:
                    raise PosturioError("unknown action")
        except PosturioError as exc:
            message = f"Not done: {exc.message}"
        flash(request, message)
        return Redirect("/console/sources", status_code=303)

    @post(
        "/{source_id:str}/files",
        status_code=303,
        # The form's other fields and multipart framing, beside the file itself.
        middleware=[DefineMiddleware(upload_limit, overhead=FORM_OVERHEAD)],
        request_max_body_size=UPLOAD_CEILING,
    )
    async def upload(
        self, request: Request[Any, Any, Any], db: Db, principal: Caller, source_id: FromPath[str]
    ) -> Redirect:
        form = await request.form()  # parsed already (the CSRF check), within upload_limit
        upload = form.get("file")
        try:
            async with db.begin_nested():  # a refusal keeps none of it
                if not isinstance(upload, UploadFile):
                    raise PosturioError("choose a file")
                await sources.add_upload(
                    db,
                    principal,
                    request.app.state.settings,
                    source_id,
                    upload.filename,
                    await upload.read(),
                    upload.content_type,
                )
                source = await sources.get(db, principal, source_id)
                if source.status == "approved":
                    defer(db, sync_source, str(principal.tenant_id), str(source.id))
                message = f"{upload.filename} uploaded."
        except PosturioError as exc:
            message = f"Not uploaded: {exc.message}"
        flash(request, message)
        return Redirect("/console/sources", status_code=303)
