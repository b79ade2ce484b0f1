import logging
from pathlib import Path

import pytest

from ftagent.cli import main


def test_missing_interface_is_a_clear_runtime_failure(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "ftagent.toml"
    cfg.write_text(
        f'[agent]\ninterface = "nosuchif0"\nstate_dir = "{tmp_path / "state"}"\n'
        'log_format = "json"\n[http]\nenabled = false\n'
    )
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    try:
        assert main(["run", "--config", str(cfg)]) == 1
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
    err = capsys.readouterr().err
    assert '"msg":"cannot start the XDP data path on nosuchif0: no interface named' in err
    assert (tmp_path / "state").is_dir()
