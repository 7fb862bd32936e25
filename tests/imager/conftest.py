import pytest

import imager.process


@pytest.fixture(autouse=True)
def no_shelling_out(request, monkeypatch):
    """Unit tests must not run programs by accident; tests marked 'root' use the real tools."""
    if "root" in request.keywords:
        return

    def refuse(argv, **kwargs):
        raise AssertionError(f"a unit test tried to run {list(argv)}")

    monkeypatch.setattr(imager.process, "_popen", refuse)
