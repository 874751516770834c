"""Assertions shared by the command-line tests (``tests/`` is on ``sys.path``: see conftest.py)."""


def one_error_line(capsys, *fragments, prefix: str | None = None) -> str:
    """The CLI's stderr is exactly one line (starting with ``prefix`` if given) containing every fragment."""
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and (prefix is None or err[0].startswith(prefix)), err
    for f in fragments:
        assert f in err[0], err[0]
    return err[0]
