"""gRPC settings: off unless a port is set, and TLS needs its certificate and key together."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError
from seqserve.service.settings import Settings


def test_grpc_is_off_by_default_and_on_with_its_port(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().grpc_port is None
    monkeypatch.setenv("SEQSERVE_GRPC_PORT", "8001")
    monkeypatch.setenv("SEQSERVE_GRPC_MAX_MESSAGE_BYTES", "1048576")
    settings = Settings()
    assert (settings.grpc_port, settings.grpc_max_message_bytes) == (8001, 1 << 20)


def test_tls_needs_both_files(tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.write_text("-")
    key.write_text("-")
    with pytest.raises(ValidationError, match="both SEQSERVE_GRPC_TLS_CERT and"):
        Settings(grpc_port=8001, grpc_tls_cert=cert)
    with pytest.raises(ValidationError, match="is not a file"):
        Settings(grpc_port=8001, grpc_tls_cert=cert, grpc_tls_key=tmp_path / "missing.pem")
    assert Settings(grpc_port=8001, grpc_tls_cert=cert, grpc_tls_key=key).grpc_tls_key == key
