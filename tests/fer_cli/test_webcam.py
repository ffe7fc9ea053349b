"""The webcam demo (`fer webcam`, scripts/webcam_demo.py) and `fer predict` on folders and videos,
run as users run them, on generated videos: no camera and no display needed."""

import json
import re
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import cv2
import httpx
import pytest

from tests.conftest import REPO, count_video_frames, run_python, write_face_video


def fer(*args, **kwargs):
    return run_python("-m", "fer_cli", *args, **kwargs)


@pytest.fixture(scope="module")
def face_video(tmp_path_factory):
    return write_face_video(tmp_path_factory.mktemp("video") / "faces.mp4", frames=20)


def _log(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_headless_run_writes_the_annotated_video_and_a_log_line_per_frame(face_video, exported_weights, tmp_path):
    out, log = tmp_path / "out.mp4", tmp_path / "frames.jsonl"
    result = fer(
        "webcam", "--source", str(face_video), "--headless", "--output", str(out), "--log", str(log),
        "--weights", str(exported_weights), "--device", "cpu",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert count_video_frames(out) == count_video_frames(face_video) == 20
    capture = cv2.VideoCapture(str(out))
    assert capture.get(cv2.CAP_PROP_FPS) == pytest.approx(10.0)  # the source's frame rate
    capture.release()
    entries = _log(log)
    assert [entry["frame"] for entry in entries] == list(range(20))
    assert entries[10]["timestamp"] == pytest.approx(1.0)  # 10 fps
    with_faces = [entry for entry in entries if entry["faces"]]
    assert len(with_faces) >= 15
    face = with_faces[0]["faces"][0]
    assert set(face) == {"track", "box", "emotion", "score", "smoothed_emotion", "smoothed_scores"}
    assert len(face["smoothed_scores"]) == 7
    assert re.search(r"frames 20, faces \d+, mean [0-9.]+ FPS", result.stdout)
    assert "emotions over the run:" in result.stdout


def test_smoothing_reduces_label_changes(tmp_path):
    # A mouth covered in a random third of the frames, under heavy pixel noise, makes the shipped
    # model's per-frame label flicker on one face (24 changes in 40 frames when written).
    video = write_face_video(tmp_path / "noisy.mp4", frames=40, noise=50, hide_smile=0.3, seed=0)

    def run(smooth: str):
        log = tmp_path / f"smooth{smooth}.jsonl"
        return log, fer("webcam", "--source", str(video), "--headless", "--log", str(log), "--smooth", smooth)

    with ThreadPoolExecutor(2) as pool:  # the two runs side by side: each spends seconds importing
        runs = dict(zip(("0", "0.8"), pool.map(run, ("0", "0.8"))))
    changes = {}
    for smooth, (log, result) in runs.items():
        assert result.returncode == 0, result.stderr
        # Smoothing is per track: follow the face's own track (in this much noise the detector also
        # sees a face in the astronaut's whole figure, in about one frame in six).
        tracks = Counter(face["track"] for entry in _log(log) for face in entry["faces"])
        track = tracks.most_common(1)[0][0]
        labels = [face["smoothed_emotion"] for entry in _log(log) for face in entry["faces"] if face["track"] == track]
        assert len(labels) >= 35
        changes[smooth] = sum(a != b for a, b in zip(labels, labels[1:]))
    assert changes["0"] >= 3
    assert changes["0.8"] < changes["0"] / 2


def test_max_frames_stops_early(face_video, exported_weights, tmp_path):
    log = tmp_path / "frames.jsonl"
    result = fer(
        "webcam", "--source", str(face_video), "--headless", "--log", str(log), "--max-frames", "5",
        "--weights", str(exported_weights),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert len(_log(log)) == 5


def test_api_mode_sends_frames_to_a_running_server(face_video, exported_weights, tmp_path):
    from api import create_app
    from api.settings import Settings
    from fer.predictor import Predictor
    from tests.api.conftest import running_server

    predictor = Predictor.load(exported_weights, device="cpu", tta="none")
    log = tmp_path / "frames.jsonl"
    with running_server(create_app(Settings(api_key="k3y"), predictor=predictor)) as url:
        result = fer(
            "webcam", "--source", str(face_video), "--headless", "--api", url, "--api-key", "k3y", "--log", str(log)
        )
        metrics = httpx.get(f"{url}/metrics").text
    assert result.returncode == 0, result.stderr
    entries = _log(log)
    assert len(entries) == 20 and sum(bool(entry["faces"]) for entry in entries) >= 15
    assert 'fer_requests_total{route="/v1/predict",status="200"} 20.0' in metrics


@pytest.mark.parametrize(
    "source, message",
    [
        ("9", "no camera at index 9; pass --source FILE or URL"),
        ("missing.mp4", "no such video file: missing.mp4"),
    ],
)
def test_missing_camera_or_file_is_one_clear_line(source, message, exported_weights, tmp_path):
    result = fer("webcam", "--source", source, "--headless", "--weights", str(exported_weights), cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == f"fer: error: {message}"


def test_unreadable_video_file_is_a_clear_error(exported_weights, tmp_path):
    fake = tmp_path / "notes.mp4"
    fake.write_text("this is not a video")
    result = fer("webcam", "--source", str(fake), "--headless", "--weights", str(exported_weights))
    assert result.returncode == 2
    assert f"cannot read {fake} as a video" in result.stderr and "Traceback" not in result.stderr


def test_unreachable_api_is_a_clear_error(face_video):
    from tests.api.conftest import free_port

    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    result = fer("webcam", "--source", str(face_video), "--headless", "--api", url)
    assert result.returncode == 2
    assert f"cannot reach the API at {url}" in result.stderr and "Traceback" not in result.stderr


def test_the_script_is_the_same_demo(face_video, exported_weights, tmp_path):
    script = str(REPO / "scripts" / "webcam_demo.py")
    assert "--smooth ALPHA" in run_python(script, "--help").stdout
    log = tmp_path / "frames.jsonl"
    result = run_python(
        script, "--source", str(face_video), "--headless", "--log", str(log), "--weights", str(exported_weights)
    )
    assert result.returncode == 0 and len(_log(log)) == 20
    missing = run_python(script, "--source", "missing.mp4", "--headless")
    assert missing.returncode == 2 and missing.stderr.strip() == "webcam_demo: error: no such video file: missing.mp4"


def test_predict_walks_folders_and_videos_and_writes_annotated_copies(face_video, exported_weights, tmp_path):
    from PIL import Image
    from skimage import data

    inputs = tmp_path / "inputs"
    (inputs / "clips").mkdir(parents=True)
    Image.fromarray(data.astronaut()).save(inputs / "astronaut.jpg")
    (inputs / "clips" / "faces.mp4").write_bytes(face_video.read_bytes())
    (inputs / "clips" / "readme.txt").write_text("not an image, skipped")
    annotated = tmp_path / "annotated"

    result = fer("predict", str(inputs), "--json", "--annotate", str(annotated), "--weights", str(exported_weights))
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    images = [line for line in lines if "frame" not in line]
    frames = [line for line in lines if "frame" in line]
    assert [line["path"] for line in images] == [str(inputs / "astronaut.jpg")]
    assert len(images[0]["faces"]) == 1
    assert [line["frame"] for line in frames] == list(range(20))
    assert (annotated / "astronaut.jpg").is_file()
    assert count_video_frames(annotated / "clips" / "faces.mp4") == 20


def test_predict_video_summary_in_text_mode(face_video, exported_weights):
    result = fer("predict", str(face_video), "--weights", str(exported_weights))
    assert result.returncode == 0
    assert re.match(rf"{re.escape(str(face_video))}: 20 frames, \d+ faces; emotions: ", result.stdout)


@pytest.mark.parametrize(
    "option, message",
    [
        (["--smooth", "1"], "--smooth must be at least 0 and below 1"),
        (["--smooth", "-0.1"], "--smooth must be at least 0 and below 1"),
        (["--max-frames", "0"], "--max-frames must be 1 or more"),
    ],
)
def test_bad_option_values_are_one_clear_line(face_video, exported_weights, option, message):
    result = fer("webcam", "--source", str(face_video), "--headless", "--weights", str(exported_weights), *option)
    assert result.returncode == 2
    assert result.stderr.strip() == f"fer: error: {message}"
