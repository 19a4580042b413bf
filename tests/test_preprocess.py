import io
import zlib

import numpy as np
import pytest
from PIL import Image, ImageDraw

from digits import decode
from digits import preprocess as pp


def draw_seven(
    size: int = 280,
    *,
    offset: tuple[int, int] = (0, 0),
    scale: float = 1.0,
    width: int = 18,
    mode: str = "L",
    ink: int = 0,
    paper: int = 255,
) -> Image.Image:
    """A "7" drawn like a canvas stroke."""
    canvas = Image.new("L", (size, size), paper)
    dx, dy = offset
    points = [(90, 60), (190, 60), (120, 220)]
    points = [
        (size / 2 + (x - 140) * scale + dx, size / 2 + (y - 140) * scale + dy) for x, y in points
    ]
    ImageDraw.Draw(canvas).line(points, fill=ink, width=width, joint="curve")
    return canvas.convert(mode)


def png(image: Image.Image, fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


def close(a: np.ndarray, b: np.ndarray, tol: float = 0.06) -> bool:
    return float(np.abs(a - b).mean()) < tol


def test_output_is_mnist_framed() -> None:
    out = pp.to_model_input(png(draw_seven()))
    assert out.shape == (28, 28) and out.dtype == np.float32
    assert out.max() == pytest.approx(1.0) and out.min() == 0.0
    rows = np.flatnonzero(out.max(axis=1) > 0.05)
    cols = np.flatnonzero(out.max(axis=0) > 0.05)
    assert max(rows[-1] - rows[0], cols[-1] - cols[0]) + 1 <= 21  # fits the 20x20 box
    ys, xs = np.mgrid[:28, :28]
    com = (float((out * ys).sum() / out.sum()), float((out * xs).sum() / out.sum()))
    assert abs(com[0] - 14) <= 1 and abs(com[1] - 14) <= 1


def test_translation_invariance() -> None:
    centred = pp.to_model_input(png(draw_seven()))
    for offset in [(-70, -60), (60, 50), (75, -70)]:
        assert close(pp.to_model_input(png(draw_seven(offset=offset, scale=0.5))), centred, 0.08)


def test_scale_invariance() -> None:
    big = pp.to_model_input(png(draw_seven(scale=1.0, width=18)))
    small = pp.to_model_input(png(draw_seven(scale=0.3, width=6)))
    assert close(big, small, 0.08)


def test_polarity_and_encodings_agree() -> None:
    reference = pp.to_model_input(png(draw_seven()))
    inverted = pp.to_model_input(png(draw_seven(ink=255, paper=0)))
    rgb = pp.to_model_input(png(draw_seven(mode="RGB")))
    jpeg = pp.to_model_input(png(draw_seven(mode="RGB"), "JPEG"))
    array = pp.to_model_input(np.asarray(draw_seven()))
    for other in (inverted, rgb, array):
        assert close(other, reference, 0.01)
    assert close(jpeg, reference, 0.05)


@pytest.mark.parametrize("stroke_rgb", [(0, 0, 0), (255, 255, 255), (30, 60, 200)])
def test_transparent_canvas_is_composited(stroke_rgb: tuple[int, int, int]) -> None:
    """Canvas exports: transparent background (alpha 0, often colour 0,0,0) and opaque strokes."""
    reference = pp.to_model_input(png(draw_seven()))
    mask = np.asarray(draw_seven(ink=255, paper=0))
    rgba = np.zeros((280, 280, 4), np.uint8)
    rgba[..., :3] = stroke_rgb
    rgba[..., 3] = mask
    assert close(pp.to_model_input(png(Image.fromarray(rgba, "RGBA"))), reference, 0.02)
    assert close(pp.to_model_input(rgba), reference, 0.02)


def test_stroke_width_is_normalised() -> None:
    thin = pp.to_model_input(png(draw_seven(width=3)))
    thick = pp.to_model_input(png(draw_seven(width=45)))
    for out in (thin, thick):
        width = pp.stroke_width(out)
        assert pp.STROKE_THIN - 0.6 <= width <= pp.STROKE_THICK + 0.6, width


@pytest.mark.parametrize(
    "image",
    [
        np.zeros((280, 280), np.uint8),
        np.full((280, 280), 255, np.uint8),
        np.full((280, 280, 4), 0, np.uint8),  # fully transparent canvas
        (np.random.default_rng(0).random((280, 280)) * 12).astype(np.uint8),  # faint noise
    ],
    ids=["black", "white", "transparent", "faint-noise"],
)
def test_blank_raises_empty(image: np.ndarray) -> None:
    with pytest.raises(decode.EmptyImageError):
        pp.to_model_input(image)
    with pytest.raises(decode.EmptyImageError):
        pp.to_model_input(png(Image.fromarray(image)))


def test_tiny_speck_is_empty() -> None:
    image = np.full((280, 280), 255, np.uint8)
    image[100:102, 100:102] = 0
    with pytest.raises(decode.EmptyImageError):
        pp.to_model_input(image)


def test_oversized_bytes_refused() -> None:
    with pytest.raises(decode.ImageTooLargeError, match="bytes"):
        pp.to_model_input(b"\x89PNG" + b"\0" * 100, max_bytes=50)


def test_decompression_bomb_refused_before_decoding() -> None:
    """An 8000x8000 PNG (64 Mpixels) that compresses to about 60 KB."""
    width = height = 8_000
    raw = zlib.compress(b"\0" * ((width + 1) * height), 9)

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            len(body).to_bytes(4, "big") + kind + body + zlib.crc32(kind + body).to_bytes(4, "big")
        )

    bomb = (
        b"\x89PNG\r\n\x1a\n"
        + chunk(
            b"IHDR", width.to_bytes(4, "big") + height.to_bytes(4, "big") + b"\x08\x00\x00\x00\x00"
        )
        + chunk(b"IDAT", raw)
        + chunk(b"IEND", b"")
    )
    assert len(bomb) < decode.DEFAULT_MAX_BYTES
    with pytest.raises(decode.ImageTooLargeError, match="pixels"):
        pp.to_model_input(bomb)


def test_array_pixel_limit() -> None:
    with pytest.raises(decode.ImageTooLargeError):
        pp.to_model_input(np.zeros((100, 100), np.uint8), max_pixels=5000)


@pytest.mark.parametrize(
    "payload",
    [b"", b"hello", png(draw_seven())[:200], b"GIF89a" + b"\0" * 50, png(draw_seven(), "BMP")],
    ids=["empty", "text", "truncated-png", "gif", "bmp"],
)
def test_corrupt_or_unsupported_bytes(payload: bytes) -> None:
    with pytest.raises(decode.UnsupportedImageError):
        pp.to_model_input(payload)


@pytest.mark.parametrize(
    "array",
    [np.zeros((0, 5)), np.zeros((5, 5, 7)), np.full((5, 5), np.nan), np.zeros((2, 2, 2, 2))],
    ids=["no-pixels", "seven-channels", "nan", "4d"],
)
def test_bad_arrays(array: np.ndarray) -> None:
    with pytest.raises(decode.UnsupportedImageError):
        pp.to_model_input(array)


def test_input_png_round_trip() -> None:
    out = pp.to_model_input(png(draw_seven()))
    back = pp.png_to_input(pp.input_to_png(out))
    assert back.shape == (28, 28) and back.dtype == np.float32
    assert np.abs(back - out).max() <= 1 / 255 + 1e-6


def _pillow_planes(data: bytes) -> tuple[np.ndarray, np.ndarray | None]:
    image = Image.open(io.BytesIO(data))
    image.load()
    return decode._image_to_planes(image)


@pytest.mark.parametrize("mode", ["L", "LA", "RGB", "RGBA", "P", "1", "I;16", "RGBA-16"])
def test_fast_png_decoding_reads_the_same_pixels_as_pillow(mode: str) -> None:
    """8-bit PNGs go through libspng, the rest through Pillow: both must see the same pixels."""
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, (37, 53, 4), dtype=np.uint8)
    if mode == "RGBA-16":  # 16-bit RGBA, written by hand (Pillow cannot save it)
        rows = b"".join(
            b"\0" + row.astype(">u2").tobytes() for row in noise.astype(np.uint16) * 257
        )
        header = (53).to_bytes(4, "big") + (37).to_bytes(4, "big") + bytes([16, 6, 0, 0, 0])

        def chunk(kind: bytes, body: bytes) -> bytes:
            crc = zlib.crc32(kind + body).to_bytes(4, "big")
            return len(body).to_bytes(4, "big") + kind + body + crc

        data = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows))
        data += chunk(b"IEND", b"")
    else:
        data = png(Image.fromarray(noise, "RGBA").convert(mode))
    colour, alpha = decode.colour_and_alpha(
        data, max_bytes=decode.DEFAULT_MAX_BYTES, max_pixels=decode.DEFAULT_MAX_PIXELS
    )
    luminance = decode.luminance(colour)
    expected_luminance, expected_alpha = _pillow_planes(data)
    np.testing.assert_array_equal(luminance, expected_luminance)
    if expected_alpha is None:
        assert alpha is None or int(alpha.min()) == 255
    else:
        assert alpha is not None
        np.testing.assert_array_equal(alpha, expected_alpha)


def test_block_mean_is_numpys_block_mean_bit_for_bit() -> None:
    rng = np.random.default_rng(0)
    for step in (pp.WORK_SCALE, 2, 3):
        for h, w in [(5, 5), (24, 17), (9, 24)]:
            work = (rng.random((h * step, w * step)) ** 3).astype(np.float32)
            expected = work.reshape(h, step, w, step).mean(axis=(1, 3))
            np.testing.assert_array_equal(pp.block_mean(work, step), expected)


def test_border_level_is_the_truncated_median() -> None:
    rng = np.random.default_rng(1)
    for shape in [(1, 1), (1, 7), (6, 1), (13, 40), (280, 280)]:
        plane = rng.integers(0, 256, shape, dtype=np.uint8)
        border = np.concatenate([plane[0], plane[-1], plane[:, 0], plane[:, -1]])
        assert pp._border_level(plane) == int(np.median(border))


@pytest.mark.parametrize("background", [0, 40, 127, 128, 200, 255])
def test_ink_crop_matches_mapping_every_pixel(background: int) -> None:
    """_ink_crop maps only the cropped pixels: it must agree with mapping the whole plane."""
    rng = np.random.default_rng(background)
    plane = np.full((90, 70), background, np.uint8)
    plane[20:60, 15:50] = rng.integers(0, 256, (40, 35), dtype=np.uint8)
    table = pp._ink_table(background)
    ink = table[plane]
    peak = int(ink.max())
    rows = np.flatnonzero(ink.max(axis=1) >= pp.NOISE_FLOOR * peak)
    cols = np.flatnonzero(ink.max(axis=0) >= pp.NOISE_FLOOR * peak)
    expected = ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1].astype(np.float32) / peak
    expected[expected < pp.NOISE_FLOOR] = 0.0
    rows = np.flatnonzero(expected.max(axis=1) > pp.BBOX_THRESHOLD)
    cols = np.flatnonzero(expected.max(axis=0) > pp.BBOX_THRESHOLD)
    expected_box = expected[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    crop, box = pp._ink_crop(plane, table, plane.size)
    np.testing.assert_array_equal(crop, expected)
    np.testing.assert_array_equal(crop[box], expected_box)


@pytest.mark.parametrize("background", [0, 40, 127, 128, 200, 255])
def test_ink_map_matches_mapping_every_pixel(background: int) -> None:
    """ink_map finds the peak from the plane's extremes: it must agree with mapping every pixel."""
    rng = np.random.default_rng(background)
    plane = np.full((90, 70), background, np.uint8)
    plane[20:60, 15:50] = rng.integers(0, 256, (40, 35), dtype=np.uint8)
    ink = pp._ink_table(background)[plane]
    expected = ink.astype(np.float32) / int(ink.max())
    expected[expected < pp.NOISE_FLOOR] = 0.0
    np.testing.assert_array_equal(pp.ink_map(plane), expected)


def test_black_strokes_on_a_transparent_canvas_take_a_shortcut_to_the_same_input(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Black ink skips the luminance and compositing: it must give what they give. Ink of
    (0, 0, 1) has luminance 0 too, but goes the long way."""
    mask = np.asarray(draw_seven(ink=255, paper=0))
    black, near_black = np.zeros((2, 280, 280, 4), np.uint8)
    black[..., 3] = near_black[..., 3] = mask
    near_black[..., 2] = 1
    luminance_calls = []
    luminance = decode.luminance
    monkeypatch.setattr(decode, "luminance", lambda c: luminance_calls.append(1) or luminance(c))
    shortcut = pp.to_model_input(png(Image.fromarray(black, "RGBA")))
    assert not luminance_calls
    assert np.array_equal(shortcut, pp.to_model_input(png(Image.fromarray(near_black, "RGBA"))))
    assert luminance_calls
    grey_alpha = np.stack([black[..., 0], mask], axis=-1)  # LA: grey ink, alpha
    assert np.array_equal(shortcut, pp.to_model_input(grey_alpha))


def test_grey_rgb_and_rgba_pngs_are_decoded_by_libspng_to_the_same_input() -> None:
    """libspng decodes them (an array comes back); Pillow decodes the others (an image)."""
    seven = draw_seven()
    expected = pp.to_model_input(png(seven))
    for mode in ("L", "RGB", "RGBA"):
        data = png(seven.convert(mode))
        assert isinstance(decode.decode(data), np.ndarray)
        assert np.array_equal(pp.to_model_input(data), expected)
    assert isinstance(decode.decode(png(seven.convert("P"))), Image.Image)  # palette: Pillow's path


@pytest.mark.parametrize("channel", [0, 1, 2, 3])
def test_black_is_judged_on_the_colour_channels_only(channel: int) -> None:
    rgba = np.zeros((6, 5, 4), np.uint8)
    rgba[2, 3, channel] = 1
    views = [rgba, rgba[1:5, 1:4], np.asfortranarray(rgba)]  # words, a crop, a strided layout
    assert all(pp._black(view) == (channel == 3) for view in views)
    grey = rgba[..., 0]
    assert pp._black(grey) == (channel != 0)
