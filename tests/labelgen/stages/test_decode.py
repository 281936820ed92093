import io

import cv2
import numpy as np
import pytest
from PIL import Image

from labelgen.stages.decode import decode_image, is_truncated_jpeg, to_rgb8
from labelgen.status import StageError, Status


def encode(image: np.ndarray, ext: str) -> bytes:
    ok, data = cv2.imencode(ext, image)
    assert ok
    return data.tobytes()


def test_rgb_jpeg_round_trip_keeps_channel_order(astronaut):
    data = encode(cv2.cvtColor(np.ascontiguousarray(astronaut), cv2.COLOR_RGB2BGR), ".png")
    np.testing.assert_array_equal(decode_image(data), astronaut)


@pytest.mark.parametrize("make", [
    lambda rgb: cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY),  # grey
    lambda rgb: cv2.cvtColor(rgb, cv2.COLOR_RGB2BGRA),  # BGRA as written by OpenCV
    lambda rgb: cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR).astype(np.uint16) * 257,  # 16-bit
], ids=["grey", "rgba", "16bit"])
def test_unusual_png_encodings_decode_to_rgb8(astronaut, make):
    decoded = decode_image(encode(make(np.ascontiguousarray(astronaut)), ".png"))
    assert decoded.dtype == np.uint8 and decoded.shape == astronaut.shape
    grey = cv2.cvtColor(np.ascontiguousarray(astronaut), cv2.COLOR_RGB2GRAY).astype(int)
    assert np.abs(decoded.mean(axis=2) - grey).mean() < 3  # the same picture, not noise


def test_cmyk_jpeg_decodes_to_rgb(astronaut):
    buffer = io.BytesIO()
    Image.fromarray(astronaut).convert("CMYK").save(buffer, format="JPEG", quality=95)
    decoded = decode_image(buffer.getvalue())
    assert decoded.shape == astronaut.shape
    assert np.abs(decoded.astype(int) - astronaut.astype(int)).mean() < 12


def test_to_rgb8_handles_float_and_grey_alpha():
    assert to_rgb8(np.ones((2, 3), np.float32)).tolist() == [[[255] * 3] * 3] * 2
    assert to_rgb8(np.full((2, 2, 2), 7, np.uint8))[0, 0].tolist() == [7, 7, 7]


@pytest.mark.parametrize("data, fragment", [
    (b"", "empty"),
    (b"this is not an image" * 20, "not a decodable image"),
])
def test_bad_bytes_raise_decode_error(data, fragment):
    with pytest.raises(StageError) as caught:
        decode_image(data)
    assert caught.value.status == Status.DECODE_ERROR and fragment in caught.value.message


def test_truncated_jpeg_is_rejected_not_half_decoded(lfw_root):
    data = (lfw_root / "images" / "Aaron_Peirsol_0001.jpg").read_bytes()
    assert not is_truncated_jpeg(data)
    assert is_truncated_jpeg(data[: len(data) // 2])
    with pytest.raises(StageError, match="truncated"):
        decode_image(data[: len(data) // 2])
