#!/usr/bin/env bash
# Installs what the document tests read PDFs with, from Debian's packages: poppler-utils
# (pdftotext finds the fields, pdftoppm renders the pages, pdfimages lists the map's tiles) and
# qpdf (`qpdf --check`, the structural validator). Idempotent.
set -euo pipefail
missing=()
command -v pdftotext >/dev/null && command -v pdftoppm >/dev/null || missing+=(poppler-utils)
command -v qpdf >/dev/null || missing+=(qpdf)
if ((${#missing[@]})); then
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}" >/dev/null
fi
