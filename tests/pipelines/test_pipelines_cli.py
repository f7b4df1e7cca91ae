"""`t2v generate` and `t2v edit` end to end on the tiny models; bad input is one stderr line, exit 2."""

from __future__ import annotations

import subprocess
import sys

import pytest

from t2v.data.video_io import read_video


def run_main(args, monkeypatch, capsys):
    """Run the CLI through `t2v.cli.main` (the T2VError handler) -> (exit code, stdout, stderr)."""
    from t2v import cli

    monkeypatch.setattr(sys, "argv", ["t2v", *map(str, args)])
    with pytest.raises(SystemExit) as e:
        cli.main()
    out = capsys.readouterr()
    return e.value.code, out.out, out.err


def _one_error_line(code, err, match):
    lines = [l for l in err.splitlines() if l.strip()]
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("error:"), err
    assert match in lines[0], lines[0]


FAST = ["--num-frames", "3", "--steps", "2", "--device", "cpu"]


def test_generate_writes_the_video_and_prints_where(video_model, tmp_path, monkeypatch, capsys):
    out = tmp_path / "cat.mp4"
    code, stdout, _ = run_main(["generate", "a cat", "--model", video_model, "--out", out, *FAST], monkeypatch, capsys)
    assert code == 0 and stdout.strip() == str(out)
    frames, fps = read_video(out)
    assert frames.shape == (3, 16, 16, 3) and fps == pytest.approx(8)

    gif = tmp_path / "cat.gif"
    code, stdout, _ = run_main(["generate", "a cat", "--model", video_model, "--out", gif, "--fps", "4",
                                "--height", "24", "--width", "32", "--scheduler", "dpm++", *FAST], monkeypatch, capsys)
    frames, fps = read_video(gif)
    assert code == 0 and frames.shape == (3, 24, 32, 3) and fps == pytest.approx(4)

    code, stdout, _ = run_main(["generate", "A cat, on a sofa!", "--model", video_model, "--out", tmp_path / "dir", *FAST],
                               monkeypatch, capsys)
    assert code == 0 and stdout.strip() == str(tmp_path / "dir" / "a-cat-on-a-sofa.mp4")


def test_generate_prompts_file_writes_one_numbered_video_per_line(video_model, tmp_path, monkeypatch, capsys):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a red circle moving right\n\n  a blue square  \n")
    code, stdout, _ = run_main(["generate", "--prompts", prompts, "--model", video_model, "--out", tmp_path / "batch", *FAST],
                               monkeypatch, capsys)
    names = [p.split("/")[-1] for p in stdout.split()]
    assert code == 0 and names == ["000-a-red-circle-moving-right.mp4", "001-a-blue-square.mp4"]
    assert sorted(p.name for p in (tmp_path / "batch").iterdir()) == names
    assert read_video(tmp_path / "batch" / names[1])[0].shape == (3, 16, 16, 3)


def test_edit_writes_one_video_per_prompt_and_the_comparison(tuned_dir, tmp_path, monkeypatch, capsys):
    out = tmp_path / "edits"
    code, stdout, err = run_main(["edit", "--tuned", tuned_dir, "--prompt", "a red wolf", "--prompt", "a wolf in snow",
                                  "--steps", "3", "--out", out, "--device", "cpu"], monkeypatch, capsys)
    assert code == 0, err
    paths = stdout.split()
    assert [p.split("/")[-1] for p in paths] == ["000-a-red-wolf.mp4", "001-a-wolf-in-snow.mp4", "comparison.mp4"]
    for p in paths[:2]:
        frames, fps = read_video(p)
        assert frames.shape == (4, 16, 16, 3) and fps == pytest.approx(4)  # 8 fps source, every 2nd frame
    frames, _ = read_video(paths[2])
    # source | edit | edit, each enlarged 12x to 192 px, 2 px apart, captions below.
    assert frames.shape[0] == 4 and frames.shape[2] == 3 * 192 + 2 * 2 and frames.shape[1] > 192
    assert (tuned_dir / "inversion-3.safetensors").is_file()


@pytest.mark.parametrize(
    "args, match",
    [
        (["generate", "   "], "the prompt is empty"),
        (["generate", "a cat", "--num-frames", "0"], "num_frames must be at least 1"),
        (["generate", "a cat", "--height", "15"], "height 15 is not a positive multiple of 2"),
        (["generate", "a cat", "--scheduler", "plms"], "unknown scheduler 'plms'"),
        (["generate", "a cat", "--timestep-shift", "0"], "--timestep-shift must be positive"),
        (["generate", "a cat", "--timestep-shift", "3", "--scheduler", "ddim"], "DDIMScheduler takes no explicit timesteps"),
        (["generate", "a cat", "--high-noise-guidance", "8x"], "--high-noise-guidance takes S@T"),
        (["generate", "a cat", "--temporal-guidance", "1"], "--temporal-guidance takes S@T"),
        (["generate", "a cat", "--temporal-guidance", "0@750"], "--temporal-guidance S@T needs S > 0"),
        (["generate", "a cat", "--cascade", "--temporal-guidance", "1@750"], "--temporal-guidance is for the base model alone"),
        (["generate", "a cat", "--cascade", "--timestep-shift", "2"], "--timestep-shift is for the base model alone"),
        (["generate", "a cat", "--cascade", "--high-noise-guidance", "8@900"], "--high-noise-guidance is for the base model alone"),
        (["generate"], "give either a PROMPT or --prompts FILE"),
        (["generate", "--prompts", "nowhere.txt"], "--prompts nowhere.txt is not a file"),
        (["edit", "--prompt", "x"], "pass --tuned DIR"),
    ],
)
def test_bad_input_is_one_line_exit_2(video_model, args, match, monkeypatch, capsys):
    if args[0] == "generate" and len(args) > 1:
        args = [*args, "--model", video_model, "--steps", "2", "--device", "cpu"]
    code, _, err = run_main(args, monkeypatch, capsys)
    _one_error_line(code, err, match)


def test_model_folder_missing_a_part(video_model, tmp_path, monkeypatch, capsys):
    import shutil

    folder = shutil.copytree(video_model, tmp_path / "m")
    shutil.rmtree(folder / "text_encoder")
    code, _, err = run_main(["generate", "a cat", "--model", folder], monkeypatch, capsys)
    _one_error_line(code, err, "has no text_encoder/ part")


def test_no_default_model(monkeypatch, capsys):
    from t2v.pipelines import model_folder

    monkeypatch.setattr(model_folder, "DEFAULT_MODEL", "no-such-model")
    code, _, err = run_main(["generate", "a cat"], monkeypatch, capsys)
    _one_error_line(code, err, "no default model is installed")


def test_edit_on_a_folder_that_is_not_tuned(tmp_path, monkeypatch, capsys):
    code, _, err = run_main(["edit", "--tuned", tmp_path, "--prompt", "x"], monkeypatch, capsys)
    _one_error_line(code, err, "has no tune.json")


def test_real_process_prints_one_line(video_model):
    r = subprocess.run([sys.executable, "-m", "t2v", "generate", "", "--model", str(video_model)],
                       capture_output=True, text=True)
    _one_error_line(r.returncode, r.stderr, "the prompt is empty")
    assert "Traceback" not in r.stderr
