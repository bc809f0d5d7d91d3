"""argparse's own texts and our CLIs' user errors in the user's language (matthan --lang, the
locale): usage mistakes in Vietnamese, the "did you mean" suggestion still found."""

import os
import subprocess
import sys
from pathlib import Path


def run(*args: str, lang: str = "C.UTF-8") -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LC_ALL": lang}
    return subprocess.run(
        [sys.executable, "-m", "matthan", *args], capture_output=True, text=True, timeout=60, env=env
    )


def test_a_missing_required_argument_reads_vietnamese() -> None:
    out = run("--lang", "vi", "provision", "check")
    assert out.returncode == 2
    assert out.stderr.strip() == (
        "matthan provision check: lỗi: thiếu các tham số bắt buộc: --config "
        "(xem 'matthan provision check --help')"
    )


def test_the_subcommand_own_lang_flag_and_the_locale_count_too() -> None:
    assert "thiếu các tham số bắt buộc: --config" in run("provision", "check", "--lang", "vi").stderr
    assert "thiếu các tham số bắt buộc: --config" in run("provision", "check", lang="vi_VN.UTF-8").stderr
    # English where nothing asks for Vietnamese (the source language).
    assert "the following arguments are required: --config" in run("provision", "check").stderr


def test_an_invalid_choice_reads_vietnamese_and_still_suggests_the_closest() -> None:
    out = run("--lang", "vi", "provison", "check")
    line = out.stderr.strip()
    assert out.returncode == 2 and len(line.splitlines()) == 1
    assert "lựa chọn không hợp lệ: 'provison' (chọn một trong 'demo'," in line
    assert line.endswith("; có phải là 'provision'? (xem 'matthan --help')"), line


def test_unrecognized_arguments_and_usage_read_vietnamese() -> None:
    out = run("--lang", "vi", "assets", "list", "extra")
    assert out.returncode == 2 and "lỗi: tham số không hợp lệ: extra" in out.stderr
    usage = run("--lang", "vi", "cloud", "claim", "--help").stdout
    assert usage.startswith("cách dùng: matthan cloud claim")
    assert "tùy chọn:" in usage and "hiện hướng dẫn này rồi thoát" in usage


def test_a_cli_user_error_reads_vietnamese(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'c.db'}"
    out = run("--lang", "vi", "cloud", "claim", "--ward", "Ben Nghe", "--db", db)
    assert out.returncode == 1
    assert out.stderr.strip() == "matthan: phường 'Ben Nghe' không phải mã hợp lệ ([a-z0-9-])"
    csv = tmp_path / "cams.csv"
    csv.write_text("site,ward,lat,lon,source,device\nA,w1,95,106,rtsp://a,d-1\n")
    out = run("--lang", "vi", "cloud", "import", str(csv), "--db", db)
    assert out.returncode == 1
    assert out.stderr.strip() == (
        "matthan: chưa nhập dữ liệu nào: dòng 2: lat 95.0 nằm ngoài khoảng [-90, 90]"
    )
