"""Proof files sent with claims through the member portal (an invoice scan, a photo of a
co-marketing activity): stored under ``settings.proof_dir`` per tenant with a random name,
checked by size and by their first bytes (PDF, PNG, JPEG, WebP, GIF only), and referred to by
``proof:<tenant>/<name>`` in the claim's ``proof_ref``. Only the claim's member tree and the
tenant's operators may download them (the routes check that; this module only stores)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from allegiance.kit.errors import ValidationFailed
from allegiance.kit.ids import new_id
from allegiance.kit.settings import get_settings

PREFIX = "proof:"
CHUNK = 1024 * 1024
# The first bytes of each accepted kind → (extension, media type).
KINDS: tuple[tuple[bytes, str, str], ...] = (
    (b"%PDF-", "pdf", "application/pdf"),
    (b"\x89PNG\r\n\x1a\n", "png", "image/png"),
    (b"\xff\xd8\xff", "jpg", "image/jpeg"),
    (b"GIF87a", "gif", "image/gif"),
    (b"GIF89a", "gif", "image/gif"),
)
MEDIA = {ext: media for _, ext, media in KINDS} | {"webp": "image/webp"}
_REF = re.compile(r"^proof:([A-Za-z0-9_]{1,40})/(prf_[A-Za-z0-9]{1,40})\.([a-z]{3,4})$")


class InvalidProof(ValidationFailed):
    code = "invalid_proof"


@dataclass(frozen=True)
class Proof:
    ref: str
    path: Path
    media_type: str
    file_name: str


def _kind(head: bytes) -> tuple[str, str] | None:
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp", "image/webp"
    for magic, ext, media in KINDS:
        if head.startswith(magic):
            return ext, media
    return None


def store(tenant_id: str, upload: BinaryIO, field: str = "proof") -> str:
    """Keep an uploaded file; its ``proof_ref``. Refused (nothing kept) when empty, too large
    or not a PDF or image."""
    head = upload.read(16)
    kind = _kind(head)
    if not head:
        raise InvalidProof("choose a proof file (PDF or image)", field=field)
    if kind is None:
        raise InvalidProof("the proof must be a PDF, PNG, JPEG, WebP or GIF file", field=field)
    limit = get_settings().proof_max_bytes
    name = f"{new_id('prf')}.{kind[0]}"
    folder = Path(get_settings().proof_dir) / tenant_id
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / name
    size = len(head)
    try:
        with target.open("wb") as out:
            out.write(head)
            while chunk := upload.read(CHUNK):
                size += len(chunk)
                if size > limit:
                    raise InvalidProof(f"the proof file is larger than {limit // 1024 // 1024} "
                                       "MB", field=field)
                out.write(chunk)
    except BaseException:
        target.unlink(missing_ok=True)
        raise
    return f"{PREFIX}{tenant_id}/{name}"


def discard(ref: str) -> None:
    """Remove a stored file whose claim was refused (best effort)."""
    found = locate(ref, ref.removeprefix(PREFIX).split("/", 1)[0])
    if found is not None:
        found.path.unlink(missing_ok=True)


def locate(ref: str | None, tenant_id: str) -> Proof | None:
    """The stored file of a ``proof_ref`` of this tenant; None for another tenant's, for a
    reference that is not a stored upload (an API client's URL), or a missing file."""
    match = _REF.match(ref or "")
    if match is None or match.group(1) != tenant_id:
        return None
    path = Path(get_settings().proof_dir) / tenant_id / f"{match.group(2)}.{match.group(3)}"
    if not path.is_file():
        return None
    return Proof(ref or "", path, MEDIA.get(match.group(3), "application/octet-stream"),
                 f"proof.{match.group(3)}")
