"""The C++ core's folders include one another one way: python/ -> epochs/ -> gemm/, sparse/,
optim/ -> runtime/ (src/cpp/README.md). Reads the sources as text; builds nothing."""
import pathlib
import re

import pytest

CPP = pathlib.Path(__file__).resolve().parents[1] / "src" / "cpp"
# What each folder may include besides itself.
ALLOWED = {
    "python": {"epochs", "gemm", "sparse", "optim", "runtime"},
    "epochs": {"gemm", "sparse", "optim", "runtime"},
    "gemm": {"runtime"},
    "sparse": {"runtime"},
    "optim": {"runtime"},
    "runtime": set(),
}
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)

pytestmark = pytest.mark.skipif(not CPP.is_dir(), reason="needs the source tree (src/cpp)")


def _sources():
    return sorted(p for p in CPP.rglob("*") if p.suffix in (".cpp", ".hpp"))


def test_every_source_is_in_a_known_folder():
    folders = {p.relative_to(CPP).parts[0] for p in _sources()}
    assert folders == set(ALLOWED)


@pytest.mark.parametrize("source", _sources() if CPP.is_dir() else [], ids=lambda p: str(p.relative_to(CPP)))
def test_includes_flow_one_way(source):
    folder = source.relative_to(CPP).parts[0]
    for header in INCLUDE.findall(source.read_text()):
        target = header.split("/")[0]
        assert (CPP / header).is_file(), f"{source.relative_to(CPP)} includes {header!r}: no such file under src/cpp"
        assert target == folder or target in ALLOWED[folder], (
            f"{source.relative_to(CPP)} includes {header}: {folder}/ may include only "
            f"{sorted(ALLOWED[folder] | {folder})}")
