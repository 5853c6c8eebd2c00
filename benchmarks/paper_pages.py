"""Paper, ink and pens: how well the package reads digits on synthetic pages (issue 27).

Each condition draws MNIST test digits (fixed seeds) as a person's page would show them: photos on
ruled, grid and coloured paper, red ink on blue paper of the same grey, glare, chalk, big markers,
thin pens on large canvases; and blank pages that must read "none". Each page goes through the
package's own preparation (`prediction.prepare`), then the packaged model.

    python benchmarks/paper_pages.py [N] [condition-substring ...]      # N digits a condition (200)

To compare with an older version, run the same command with `PYTHONPATH` pointing at an export of
that version's package, e.g. `git archive 0d0b065 mnist_nbdev | tar -x -C /tmp/old` and
`PYTHONPATH=/tmp/old python benchmarks/paper_pages.py`. The figures of issue 27 are in its note.
"""
import io
import sys
import time

import numpy as np
from PIL import Image
from PIL import ImageDraw
from PIL import ImageFilter

from mnist_nbdev.data import load_mnist
from mnist_nbdev.files import load_model
from mnist_nbdev.prediction import as_photo
from mnist_nbdev.prediction import prepare
from mnist_nbdev.prediction import read_prepared

N = int(sys.argv[1]) if len(sys.argv) > 1 and sys.argv[1].isdigit() else 200
ONLY = [a for a in sys.argv[1:] if not a.isdigit()]
data = load_mnist()
IMAGES, LABELS = data.test.images.numpy(), data.test.labels.numpy()


def read(img: Image.Image):
    "The 28x28 image the package prepares from `img`, or None: no digit found."
    return prepare(img)[0][0]


# ---- the pages ----------------------------------------------------------------------------------
LUMA = np.array([0.299, 0.587, 0.114])


def _jpeg(img: Image.Image, quality: int = 85) -> Image.Image:
    "The image after a JPEG round trip, as a phone would store it."
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality)
    return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")


def _stripes(coord: np.ndarray, spacing: float, offset: float, thick: float) -> np.ndarray:
    "Anti-aliased coverage (0-1) of lines `thick` wide every `spacing` along `coord`."
    d = np.abs((coord - offset + spacing / 2) % spacing - spacing / 2)
    return np.clip(thick / 2 + 0.5 - d, 0, 1)


def photo(digit, seed, size=(480, 640), paper=None, ink=None, line=None, spacing=None,
          thick=None, grid=False, margin=None, tilt=0.0, glare=False, jpeg=True,
          side_range=(160, 320), ink_strength=1.0, noise=0.03):
    """An MNIST digit photographed on paper, optionally ruled or squared.

    paper, ink, line: RGB in [0, 1] (None: as_photo's random light paper / dark ink);
    spacing, thick: of the lines in pixels; grid: vertical lines too; margin: RGB of a
    vertical margin line; tilt: degrees of the lines' rotation."""
    rng = np.random.default_rng(seed)
    h, w = size
    side = int(rng.integers(*side_range))
    big = Image.fromarray(digit).resize((side, side), Image.Resampling.BICUBIC)
    alpha = np.asarray(big, dtype=np.float32)[..., None] / 255 * ink_strength
    paper = np.asarray(paper if paper is not None else rng.uniform(0.8, 0.97, 3))
    ink = np.asarray(ink if ink is not None else rng.uniform(0.0, 0.25, 3))
    page = np.ones((h, w, 3), dtype=np.float32) * paper
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    t = np.tan(np.radians(tilt))
    if line is not None:
        sp = spacing if spacing is not None else rng.uniform(22, 36)
        th = thick if thick is not None else rng.uniform(1.0, 2.5)
        cover = _stripes(yy + t * (xx - w / 2), sp, rng.uniform(0, sp), th)
        if grid:
            cover = np.maximum(cover, _stripes(xx - t * (yy - h / 2), sp, rng.uniform(0, sp), th))
        page = page * (1 - cover[..., None]) + np.asarray(line) * cover[..., None]
    if margin is not None:
        x0 = rng.uniform(0.08, 0.2) * w
        cover = _stripes(xx - t * (yy - h / 2), 10 * w, x0, rng.uniform(1.5, 3))
        page = page * (1 - cover[..., None]) + np.asarray(margin) * cover[..., None]
    top = int(rng.integers(0, h - side))
    left = int(rng.integers(0, w - side))
    window = page[top : top + side, left : left + side]
    page[top : top + side, left : left + side] = window * (1 - alpha) + ink * alpha
    if glare:  # a bright highlight, away from the digit
        cands = rng.uniform(0, 1, (8, 2)) * (h, w)
        far = np.hypot(cands[:, 0] - top - side / 2, cands[:, 1] - left - side / 2)
        cy, cx = cands[np.argmax(far)]
        r = rng.uniform(0.06, 0.15) * min(h, w)
        g = np.exp(-(((yy - cy) ** 2 + ((xx - cx) * 0.6) ** 2) / (2 * r**2)))[..., None]
        page = page + (1.0 - page) * g * 0.95
    shade = np.linspace(0, rng.uniform(-0.08, 0.08), w)
    page = page + shade[None, :, None] + rng.normal(0, noise, page.shape)
    img = Image.fromarray((np.clip(page, 0, 1) * 255).astype(np.uint8))
    return _jpeg(img) if jpeg else img


def same_gray_red_on_blue(seed):
    "A red ink and a blue paper of the same grey level (Pillow's L)."
    rng = np.random.default_rng(seed + 77)
    paper = np.array([rng.uniform(0.15, 0.35), rng.uniform(0.4, 0.55), rng.uniform(0.8, 0.95)])
    red = np.array([0.0, rng.uniform(0.1, 0.25), rng.uniform(0.1, 0.25)])
    red[0] = (paper @ LUMA - red[1:] @ LUMA[1:]) / LUMA[0]  # the same grey
    return paper, red


def drawing_rgba(digit, seed):
    "As tests/test_prediction.py's drawing: RGBA, transparent background, black strokes."
    rng = np.random.default_rng(seed)
    side = int(rng.integers(200, 400))
    alpha = Image.fromarray(digit).resize((side, side), Image.Resampling.BICUBIC).filter(
        ImageFilter.GaussianBlur(1))
    canvas = Image.new("RGBA", (side + int(rng.integers(50, 300)),
                                side + int(rng.integers(50, 300))), (0, 0, 0, 0))
    stroke = Image.new("RGBA", (side, side), (20, 20, 30, 255))
    stroke.putalpha(alpha)
    canvas.paste(stroke, (int(rng.integers(0, canvas.width - side)),
                          int(rng.integers(0, canvas.height - side))))
    return canvas


def canvas_white_on_black(digit, seed, canvas=280):
    "A drawing page's canvas: white strokes on black, RGB, digit large in the middle."
    rng = np.random.default_rng(seed)
    side = int(canvas * rng.uniform(0.6, 0.8))
    big = Image.fromarray(digit).resize((side, side), Image.Resampling.BICUBIC)
    out = Image.new("L", (canvas, canvas), 0)
    out.paste(big, ((canvas - side) // 2, (canvas - side) // 2))
    return out.convert("RGB")


def big_marker(digit, seed, canvas=400, fill=0.8):
    "An MNIST digit drawn large with a marker: its box `fill` of a white canvas."
    rng = np.random.default_rng(seed)
    rows, cols = np.flatnonzero(digit.any(1)), np.flatnonzero(digit.any(0))
    crop = digit[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    scale = fill * canvas / max(crop.shape)
    size = (max(1, round(crop.shape[1] * scale)), max(1, round(crop.shape[0] * scale)))
    big = np.asarray(Image.fromarray(crop).resize(size, Image.Resampling.BICUBIC))
    out = np.full((canvas, canvas), 255, dtype=np.uint8)
    top = int(rng.integers(0, canvas - size[1] + 1))
    left = (canvas - size[0]) // 2
    out[top : top + size[1], left : left + size[0]] = 255 - big
    return Image.fromarray(out).convert("RGB")


# ---- thin pens: a 1-px skeleton of the digit, drawn as a polyline -----------------

def _thin(img: np.ndarray) -> np.ndarray:
    "Zhang-Suen thinning of a bool image to 1-px lines."
    img = np.pad(img.astype(np.uint8), 1)
    while True:
        changed = False
        for step in (0, 1):
            p = img
            p2, p3, p4 = p[:-2, 1:-1], p[:-2, 2:], p[1:-1, 2:]
            p5, p6, p7 = p[2:, 2:], p[2:, 1:-1], p[2:, :-2]
            p8, p9 = p[1:-1, :-2], p[:-2, :-2]
            ring = [p2, p3, p4, p5, p6, p7, p8, p9, p2]
            b = sum(x.astype(np.int32) for x in ring[:8])
            a = sum(((ring[i] == 0) & (ring[i + 1] == 1)).astype(np.int32) for i in range(8))
            if step == 0:
                c = ((p2 * p4 * p6) == 0) & ((p4 * p6 * p8) == 0)
            else:
                c = ((p2 * p4 * p8) == 0) & ((p2 * p6 * p8) == 0)
            gone = (p[1:-1, 1:-1] == 1) & (b >= 2) & (b <= 6) & (a == 1) & c
            if gone.any():
                img[1:-1, 1:-1][gone] = 0
                changed = True
        if not changed:
            return img[1:-1, 1:-1].astype(bool)


def skeleton_segments(digit: np.ndarray, up: int = 4) -> list:
    "Segments ((y0, x0), (y1, x1)) in unit coordinates of the box of the digit's skeleton."
    big = np.asarray(Image.fromarray(digit).resize((28 * up, 28 * up), Image.Resampling.BILINEAR))
    sk = _thin(big > 128)
    ys, xs = np.nonzero(sk)
    y0, y1, x0, x1 = ys.min(), ys.max(), xs.min(), xs.max()
    span = max(y1 - y0, x1 - x0, 1)
    segs = []
    on = set(zip(ys.tolist(), xs.tolist()))
    for y, x in on:
        for dy, dx in ((0, 1), (1, 0), (1, 1), (1, -1)):
            if (y + dy, x + dx) in on:
                segs.append((((y - y0) / span, (x - x0) / span),
                             ((y + dy - y0) / span, (x + dx - x0) / span),
                             (y1 - y0) / span, (x1 - x0) / span))
    return segs


def thin_pen(digit, seed, canvas=400, pen=1, fill=0.7, background=None, colour=(0, 0, 0)):
    "The digit drawn with a `pen`-px pencil on a white `canvas`x`canvas` image (RGB)."
    rng = np.random.default_rng(seed)
    segs = skeleton_segments(digit)
    hh, ww = segs[0][2], segs[0][3]
    h, w = (canvas, canvas) if background is None else (background.height, background.width)
    size = fill * min(h, w)
    top = rng.uniform(0, h - size * hh - 1)
    left = rng.uniform(0, w - size * ww - 1)
    img = Image.new("RGB", (w, h), (255, 255, 255)) if background is None else background.copy()
    draw = ImageDraw.Draw(img)
    for (ya, xa), (yb, xb), _, _ in segs:
        draw.line([(left + xa * size, top + ya * size), (left + xb * size, top + yb * size)],
                  fill=colour, width=pen)
    return img


SHAPES = {  # hand-made polylines in unit coordinates (x, y): strokes of 7, 4, 1
    7: [[(0.15, 0.1), (0.85, 0.1), (0.4, 0.92)]],
    4: [[(0.6, 0.05), (0.12, 0.62), (0.88, 0.62)], [(0.66, 0.3), (0.66, 0.95)]],
    1: [[(0.38, 0.2), (0.55, 0.05), (0.55, 0.95)]],
}


def polyline_digit(label, seed, canvas=400, pen=1, fill=0.8):
    "A hand-made 7, 4 or 1 drawn as a `pen`-px polyline, jittered, on a white canvas."
    rng = np.random.default_rng(seed)
    img = Image.new("RGB", (canvas, canvas), (255, 255, 255))
    draw = ImageDraw.Draw(img)
    size = fill * canvas
    off = (canvas - size) / 2 + rng.uniform(-0.08, 0.08, 2) * canvas
    for stroke in SHAPES[label]:
        pts = np.asarray(stroke) + rng.normal(0, 0.03, (len(stroke), 2))
        draw.line([tuple(off + p * size) for p in pts], fill=(0, 0, 0), width=pen)
    return img


# ---- the conditions ----------------------------------------------------------------------------
def picks(seed, n=N, labels=None):
    "n test indices, fixed by seed; only these labels when given."
    rng = np.random.default_rng(seed)
    pool = np.arange(len(LABELS)) if labels is None else np.flatnonzero(np.isin(LABELS, labels))
    return rng.choice(pool, min(n, len(pool)), replace=False)


def white_paper(rng):
    "A near-white paper with a slight tint."
    return rng.uniform(0.88, 0.97) + rng.uniform(-0.02, 0.02, 3)


def ruled(line, **kw):
    "A page maker: ruled (or squared) paper with lines of colour `line` (None: random)."
    def make(digit, seed):
        rng = np.random.default_rng(seed + 5)
        colour = line(rng) if callable(line) else line
        return photo(digit, seed, paper=white_paper(rng), line=colour, **kw)
    return make


def jitter(rgb, amount=0.05):
    "A colour maker: `rgb` moved a little at random."
    return lambda rng: np.clip(np.asarray(rgb) + rng.uniform(-amount, amount, 3), 0, 1)


def coloured(paper_rgb, ink_rgb, **kw):
    "A page maker: plain paper and ink of given colours (makers or RGB)."
    def make(digit, seed):
        rng = np.random.default_rng(seed + 9)
        p = paper_rgb(rng) if callable(paper_rgb) else paper_rgb
        i = ink_rgb(rng) if callable(ink_rgb) else ink_rgb
        return photo(digit, seed, paper=p, ink=i, **kw)
    return make


def red_on_blue(digit, seed):
    p, i = same_gray_red_on_blue(seed)
    return photo(digit, seed, paper=p, ink=i)


def pencil(digit, seed):
    rng = np.random.default_rng(seed + 3)
    return photo(digit, seed, paper=white_paper(rng), ink=np.full(3, rng.uniform(0.4, 0.55)))


CONDITIONS = [  # name, page maker (digit, seed) -> PIL image, labels (None: all)
    ("plain as_photo", lambda d, s: as_photo(d, s), None),
    ("plain as_photo JPEG", lambda d, s: _jpeg(as_photo(d, s)), None),
    ("RGBA drawing", drawing_rgba, None),
    ("white-on-black canvas", canvas_white_on_black, None),
    ("ruled light blue", ruled(jitter((0.72, 0.84, 0.97), 0.03)), None),
    ("ruled medium blue", ruled(jitter((0.42, 0.56, 0.88))), None),
    ("ruled dark grey", ruled(lambda r: np.full(3, r.uniform(0.3, 0.45))), None),
    ("ruled + red margin", ruled(jitter((0.5, 0.64, 0.92)), margin=(0.88, 0.25, 0.25)), None),
    ("ruled tilted 1-3 deg", lambda d, s: ruled(jitter((0.42, 0.56, 0.88)),
                                                tilt=np.random.default_rng(s).choice([-1, 1])
                                                * np.random.default_rng(s + 1).uniform(1, 3))(d, s), None),
    ("grey (L) ruled medium blue", lambda d, s: ruled(jitter((0.42, 0.56, 0.88)))(d, s).convert("L"), None),
    ("grey (L) grid grey", lambda d, s: ruled(lambda r: np.full(3, r.uniform(0.5, 0.65)), grid=True)(d, s).convert("L"), None),
    ("grid blue", ruled(jitter((0.5, 0.65, 0.92)), grid=True), None),
    ("grid grey", ruled(lambda r: np.full(3, r.uniform(0.5, 0.65)), grid=True), None),
    ("red ink on blue, same grey", red_on_blue, None),
    ("dark ink on mid-blue paper", coloured(jitter((0.25, 0.4, 0.75)), jitter((0.03, 0.03, 0.1))), None),
    ("glare on mid-blue paper", coloured(jitter((0.25, 0.4, 0.75)), jitter((0.03, 0.03, 0.1)), glare=True), None),
    ("white chalk on mid-grey board", coloured(lambda r: np.full(3, r.uniform(0.35, 0.5)), jitter((0.92, 0.92, 0.9), 0.04)), None),
    ("blue ink on white", coloured(white_paper, jitter((0.1, 0.2, 0.7))), None),
    ("pencil grey on white", pencil, None),
    ("white chalk on green", coloured(jitter((0.13, 0.28, 0.18), 0.03), jitter((0.88, 0.9, 0.86), 0.04)), None),
    ("glare on white paper", lambda d, s: photo(d, s, glare=True), None),
    ("glare on blue paper", coloured(jitter((0.45, 0.6, 0.9)), jitter((0.05, 0.05, 0.15)), glare=True), None),
    ("big marker 80%, 1/4/7", big_marker, [1, 4, 7]),
    ("big marker 80%", big_marker, None),
    ("big marker 90%, 1/4/7", lambda d, s: big_marker(d, s, fill=0.9), [1, 4, 7]),
    ("thin pen 2px 80%, 1/4/7", lambda d, s: thin_pen(d, s, 400, 2, fill=0.8), [1, 4, 7]),
    ("thin pen 2px 90%, 1/4/7", lambda d, s: thin_pen(d, s, 400, 2, fill=0.9), [1, 4, 7]),
    ("ruled 1024px, big digit", lambda d, s: ruled(jitter((0.42, 0.56, 0.88)), size=(1024, 1024),
                                                  side_range=(400, 800), thick=3)(d, s), None),
    ("thin pen 2px on ruled 640x480", lambda d, s: thin_pen(
        d, s, pen=2, fill=0.6, colour=(20, 20, 60),
        background=photo(np.zeros((28, 28), np.uint8), s, line=(0.42, 0.56, 0.88),
                               paper=(0.93, 0.93, 0.9), jpeg=False)), None),
    ("thin pen 7/4/1 polyline 1px", None, None),
    ("thin pen 7/4/1 polyline 2px", None, None),
] + [(f"thin pen {pen}px, {c}x{c}", (lambda c, pen: lambda d, s: thin_pen(d, s, c, pen))(c, pen), None)
     for pen in (1, 2) for c in (280, 400, 800, 1600)]


def images_of(name, maker, labels, seed):
    "The condition's images and labels."
    if name.startswith("thin pen 7/4/1"):
        pen = int(name[-3])
        ys = np.tile([7, 4, 1], N // 3 + 1)[: max(N // 2, 30)]
        return [polyline_digit(int(y), seed + i, 400, pen) for i, y in enumerate(ys)], ys
    n = N if not name.startswith("thin pen") else max(N // 2, 30)
    idx = picks(seed, n, labels)
    return [maker(IMAGES[i], int(seed * 1000 + k)) for k, i in enumerate(idx)], LABELS[idx]


def accuracy(model, prepared, labels):
    "Share read right, and how many read 'none'."
    preds = read_prepared(model, prepared)
    right = np.mean([p.label == y for p, y in zip(preds, labels)])
    return right, sum(p.label is None for p in preds)


BLANKS = [  # pages with no digit: each should read "none"
    ("blank as_photo", lambda s: as_photo(np.zeros((28, 28), np.uint8), s)),
    ("blank ruled medium blue", lambda s: ruled(jitter((0.42, 0.56, 0.88)))(np.zeros((28, 28), np.uint8), s)),
    ("blank grid grey", lambda s: ruled(lambda r: np.full(3, r.uniform(0.5, 0.65)), grid=True)(
        np.zeros((28, 28), np.uint8), s)),
    ("blank glare on blue", lambda s: coloured(jitter((0.45, 0.6, 0.9)), (0, 0, 0), glare=True)(
        np.zeros((28, 28), np.uint8), s)),
    ("blank white canvas 1600", lambda s: Image.new("RGB", (1600, 1600), (255, 255, 255))),
]


def blanks(n=50):
    "How many blank pages of each kind read 'none'."
    for name, make in BLANKS:
        imgs = [make(5000 + i) for i in range(n)]
        none = sum(read(im) is None for im in imgs)
        print(f"{name:34s} {n:4d} {none / n:7.0%}   (share read 'none': should be 100%)")




def main():
    model = load_model()
    print(f"{'condition':34s} {'n':>4s} {'right':>7s}  none     ms")
    if not ONLY or any("blank" in o for o in ONLY):
        blanks()
    for c, (name, maker, labels) in enumerate(CONDITIONS):
        if ONLY and not any(o in name for o in ONLY):
            continue
        imgs, ys = images_of(name, maker, labels, seed=100 + c)
        t = time.perf_counter()
        prepared = [read(im) for im in imgs]
        ms = (time.perf_counter() - t) / len(imgs) * 1000
        right, none = accuracy(model, prepared, ys)
        print(f"{name:34s} {len(ys):4d} {right:7.1%}  {none:4d} {ms:6.1f}", flush=True)


if __name__ == "__main__":
    main()
