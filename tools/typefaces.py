"""Render the digits of handwriting typefaces into `mnist_nbdev/typefaces.npz` (the writers page).

Each typeface comes from its pinned @fontsource package on npm (fonts under the SIL Open Font
License); each digit is drawn large, cropped to its ink and fitted into a 48x48 square. Only the
rendered glyphs are kept (about 100 kB); the fonts are not. Needs `npm` and the npm registry:

    python tools/typefaces.py            # writes mnist_nbdev/typefaces.npz
    python tools/typefaces.py --fonts D  # fonts already unpacked under D (any depth)
"""
import argparse
import subprocess
import sys
import tempfile
import tarfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

VERSIONS = {"single-day": "5.3.1"}  # every other package at 5.3.0
TYPEFACES = (  # Google Fonts' handwriting typefaces, as fontsource packages them
    "annie-use-your-telescope", "architects-daughter", "caveat", "caveat-brush",
    "cedarville-cursive", "chilanka", "comic-neue", "coming-soon", "covered-by-your-grace",
    "crafty-girls", "dancing-script", "dawning-of-a-new-day", "delicious-handrawn", "delius",
    "edu-nsw-act-foundation", "edu-qld-beginner", "edu-sa-beginner", "edu-tas-beginner",
    "edu-vic-wa-nt-beginner", "fuzzy-bubbles", "gaegu", "gamja-flower", "give-you-glory",
    "gloria-hallelujah", "gochi-hand", "grape-nuts", "handlee", "hi-melody", "homemade-apple",
    "indie-flower", "itim", "just-another-hand", "kalam", "klee-one", "kristi",
    "la-belle-aurore", "loved-by-the-king", "mali", "mynerve", "nanum-pen-script", "neucha",
    "nothing-you-could-do", "over-the-rainbow", "patrick-hand", "permanent-marker",
    "playpen-sans", "poor-story", "reenie-beanie", "rock-salt", "satisfy", "schoolbell",
    "sedgwick-ave", "shadows-into-light", "shantell-sans", "short-stack", "single-day",
    "square-peg", "sriracha", "sue-ellen-francisco", "swanky-and-moo-moo",
    "waiting-for-the-sunrise", "walter-turncoat", "yomogi", "zen-kurenaido", "zeyada",
)
SIDE = 48  # each glyph fitted into a square this size, ink white on black
OUT = Path(__file__).resolve().parents[1] / "mnist_nbdev" / "typefaces.npz"


def fetch(folder: Path) -> None:
    "Each typeface's npm package, unpacked into `folder`."
    specs = [f"@fontsource/{n}@{VERSIONS.get(n, '5.3.0')}" for n in TYPEFACES]
    subprocess.run(["npm", "pack", "--silent", *specs], cwd=folder, check=True,
                   stdout=subprocess.DEVNULL)
    for tgz in folder.glob("*.tgz"):
        with tarfile.open(tgz) as tar:
            tar.extractall(folder / tgz.stem, filter="data")


def glyph(font: ImageFont.FreeTypeFont, digit: str) -> np.ndarray:
    "The digit drawn in `font`, cropped to its ink, fitted into SIDE x SIDE, centred."
    page = Image.new("L", (400, 400), 0)
    ImageDraw.Draw(page).text((100, 60), digit, font=font, fill=255)
    box = page.getbbox()
    if box is None:
        raise ValueError(f"{font.path}: no ink for {digit!r}")
    ink = page.crop(box)
    scale = (SIDE - 4) / max(ink.size)
    ink = ink.resize((max(1, round(ink.width * scale)), max(1, round(ink.height * scale))),
                     Image.LANCZOS)
    square = Image.new("L", (SIDE, SIDE), 0)
    square.paste(ink, ((SIDE - ink.width) // 2, (SIDE - ink.height) // 2))
    return np.asarray(square)


def render(folder: Path) -> tuple[np.ndarray, list]:
    "(typefaces, 10, SIDE, SIDE) uint8 glyphs, and the typefaces' names."
    glyphs = []
    for name in TYPEFACES:
        found = sorted(folder.rglob(f"{name}-latin-400-normal.woff"))
        if not found:
            sys.exit(f"{name}: no {name}-latin-400-normal.woff under {folder}")
        font = ImageFont.truetype(str(found[0]), 200)
        glyphs.append([glyph(font, str(d)) for d in range(10)])
    return np.array(glyphs, dtype=np.uint8), list(TYPEFACES)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fonts", type=Path, help="fonts already unpacked here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.fonts or Path(tmp)
        if args.fonts is None:
            fetch(folder)
        glyphs, names = render(folder)
    np.savez_compressed(OUT, glyphs=glyphs, names=np.array(names))
    print(f"{OUT}: {len(names)} typefaces, {OUT.stat().st_size / 1e3:.0f} kB")


if __name__ == "__main__":
    main()
