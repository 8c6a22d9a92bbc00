"""Where `make render` and `make check` put their files: one whole render or the one before,
never half of one or a mix of two, and one line when the folder cannot take them."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from eks_gpu_slicing.review import check, render
from eks_gpu_slicing.review.render import Rendered, WriteError

A = {"resources.json": "[]\n", "kubernetes/a-1.yaml": "a: 1\n", "kubernetes/a-2.yaml": "a: 2\n"}
B = {"resources.json": "[1]\n", "helm/b.yaml": "b: 1\n"}


def rendered(files: dict[str, str]) -> Rendered:
    """Only the files matter to write(), so no program run is needed."""
    return Rendered("dev", settings=None, deployment=None, files=files, manifests={})  # type: ignore[arg-type]


def contents(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): p.read_text() for p in folder.rglob("*") if p.is_file()}


def test_a_render_interleaved_with_another_leaves_one_whole_render(tmp_path, monkeypatch):
    """Two renders into one folder at once (`make render` twice, or CI and a developer):
    the second runs whole while the first is writing. The folder ends up holding exactly one
    of them, never files of both, and nothing is left beside it."""
    out = tmp_path / "dev"
    write_text = Path.write_text
    interleaved = []

    def write_text_then_the_other_render(self, text, *args, **kwargs):
        result = write_text(self, text, *args, **kwargs)
        if not interleaved:
            interleaved.append(self)
            render.write(rendered(B), out)  # the other render, start to end
        return result

    monkeypatch.setattr(Path, "write_text", write_text_then_the_other_render)
    render.write(rendered(A), out)
    assert interleaved
    assert contents(out) == A  # the render that finished last, all of it
    assert [p.name for p in tmp_path.iterdir()] == ["dev"]


def test_a_render_that_fails_midway_leaves_the_one_before(tmp_path, monkeypatch):
    out = tmp_path / "dev"
    render.write(rendered(B), out)
    write_text = Path.write_text
    written = []

    def disk_full_on_the_second_file(self, text, *args, **kwargs):
        written.append(self)
        if len(written) == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return write_text(self, text, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", disk_full_on_the_second_file)
    with pytest.raises(WriteError, match=f"cannot write the render into {out}: No space left"):
        render.write(rendered(A), out)
    assert contents(out) == B
    assert [p.name for p in tmp_path.iterdir()] == ["dev"]


def test_a_render_replaces_the_one_before_and_its_stale_files(tmp_path):
    out = tmp_path / "dev"
    render.write(rendered(A), out)
    render.write(rendered(B), out)
    assert contents(out) == B


@pytest.fixture
def renders_nothing(monkeypatch):
    """render and check without running the program: a render of files only (their write
    fails before anything else needs the rest)."""
    monkeypatch.setattr(render, "render", lambda stack, **_: rendered(A))
    monkeypatch.setattr(check, "render", lambda stack, **_: rendered(A))


def only_line(capsys) -> str:
    out = capsys.readouterr()
    assert out.out == "" and out.err.count("\n") == 1 and "Traceback" not in out.err, out
    return out.err.strip()


def test_an_out_folder_that_cannot_be_written_is_one_line(tmp_path, capsys, renders_nothing):
    a_file = tmp_path / "Pulumi.dev.yaml"
    a_file.write_text("config: {}\n")
    not_a_render = tmp_path / "notes"
    not_a_render.mkdir()
    (not_a_render / "todo.txt").write_text("keep me\n")
    for out, why in (
        (a_file, f"cannot render into {a_file}: it is a file, not a folder"),
        (a_file / "dev", f"cannot render into {a_file / 'dev'}: {a_file} is a file"),
        (not_a_render, "holds files that are not a render (no resources.json)"),
    ):
        assert render.main(["dev", "--out", str(out)]) == 1
        assert why in only_line(capsys)
    assert (not_a_render / "todo.txt").read_text() == "keep me\n"
    assert a_file.read_text() == "config: {}\n"


@pytest.mark.parametrize("tool", ["render", "check"])
def test_an_unwritable_build_folder_is_one_line(
    tmp_path, capsys, renders_nothing, monkeypatch, tool
):
    """(As root, a read-only folder is still writable: the refusal is simulated.)"""
    mkdir = Path.mkdir

    def read_only(self, *args, **kwargs):
        if self.name.endswith(".tmp"):
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        return mkdir(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", read_only)
    monkeypatch.setattr(render, "BUILD_DIR", tmp_path / "build" / "render")
    monkeypatch.setattr(check, "BUILD_DIR", tmp_path / "build" / "render")
    main = render.main if tool == "render" else check.main
    assert main(["dev"]) == 1
    line = only_line(capsys)
    assert line == f"cannot write the render into {tmp_path}/build/render/dev: Permission denied"
    assert not (tmp_path / "build" / "render" / "dev").exists()
