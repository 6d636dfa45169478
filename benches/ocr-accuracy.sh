#!/usr/bin/env bash
# OCR character accuracy and seconds per page on image-only PDFs made from corpus PDFs: each PDF's
# first PAGES pages are rendered at 200 dpi (pdftoppm), rebuilt as a PDF of images only (Pillow),
# read by `hikitsugi extract` (OCR), and compared with the original's text layer by the text
# fidelity metric of shared/corpus/README.md (NFKC, whitespace removed, 1 − Levenshtein / max).
# Usage: benches/ocr-accuracy.sh BINARY [PAGES] [PDF...]   (needs poppler-utils, tesseract, Pillow)
set -euo pipefail
binary=${1:?usage: benches/ocr-accuracy.sh BINARY [PAGES] [PDF...]}
pages=${2:-3}
shift $(($# < 2 ? $# : 2))
pdfs=("$@")
((${#pdfs[@]})) || pdfs=(../shared/corpus/pdf/002_*.libreoffice.pdf ../shared/corpus/pdf/004_*.libreoffice.pdf)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
printf '%-48s %6s %9s %9s\n' pdf pages accuracy s/page
for pdf in "${pdfs[@]}"; do
  name=$(basename "$pdf" .pdf)
  pdftoppm -r 200 -gray -png -f 1 -l "$pages" "$pdf" "$work/$name"
  python3 - "$work" "$name" <<'PY'
import glob, sys
from PIL import Image
work, name = sys.argv[1:]
images = [Image.open(p).convert("L") for p in sorted(glob.glob(f"{work}/{name}-*.png"))]
images[0].save(f"{work}/{name}.scanned.pdf", save_all=True, append_images=images[1:], resolution=200, quality=70)
PY
  count=$(ls "$work/$name"-*.png | wc -l)
  "$binary" extract "$pdf" 2>/dev/null | python3 -c "import sys; sys.stdout.write('\f'.join(sys.stdin.read().split('\f')[:$count]))" > "$work/$name.layer.txt"
  started=$(date +%s.%N)
  "$binary" extract "$work/$name.scanned.pdf" > "$work/$name.ocr.txt" 2>/dev/null
  seconds=$(echo "$(date +%s.%N) - $started" | bc)
  accuracy=$(python3 - "$work/$name.layer.txt" "$work/$name.ocr.txt" <<'PY'
import sys, unicodedata
def comparable(path):
    text = unicodedata.normalize("NFKC", open(path, encoding="utf-8").read())
    return "".join(c for c in text if not c.isspace())
a, b = comparable(sys.argv[1]), comparable(sys.argv[2])
previous = list(range(len(b) + 1))
for i, ca in enumerate(a, 1):
    current = [i]
    for j, cb in enumerate(b, 1):
        current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
    previous = current
print(f"{1 - previous[-1] / max(len(a), len(b), 1):.3f}")
PY
)
  printf '%-48s %6d %9s %9.1f\n' "$name" "$count" "$accuracy" "$(echo "$seconds / $count" | bc -l)"
done
