#!/usr/bin/env bash
#
# Prepare a patched copy of Debian's Kore 4.1 source for kodev.
#
#   conf/kore-source.sh DEST [SRC]
#
# Copies SRC (default /usr/share/kore, or $KORE_ORIG) to DEST and applies
# every conf/patches/*.patch in name order with `patch -p1 --forward`.
# A stamp file DEST/.kiln-patches records a hash of the source version and
# of the patches; when it matches, nothing is done but touching the stamp
# (the Makefile's target). When it differs (patches added, edited or
# removed, kore upgraded), DEST is rebuilt from scratch.
# Exits non-zero if a patch does not apply; DEST is then left without a
# stamp, so the next run starts over.

set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
dest=${1:?usage: $0 DEST [SRC]}
src=${2:-${KORE_ORIG:-/usr/share/kore}}
stamp=$dest/.kiln-patches

[ -f "$src/src/kore.c" ] || { echo "kore-source: no Kore source in $src" >&2; exit 1; }

shopt -s nullglob
patches=("$here"/patches/*.patch)
shopt -u nullglob

want=$(
	{
		echo "src=$src"
		dpkg-query -W -f='kore ${Version}\n' kore 2>/dev/null || true
		for p in "${patches[@]}"; do
			echo "== $(basename "$p")"
			cat "$p"
		done
	} | sha256sum | cut -d' ' -f1
)

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
	touch "$stamp"		# up to date: only tell make so
	exit 0
fi

echo "kore-source: preparing $dest from $src (${#patches[@]} patch(es))"
rm -rf "$dest"
mkdir -p "$dest"
# Fresh mtimes (no -p): kodev's `make objects` then rebuilds every Kore
# object against the new copy, even for files a removed patch reverted.
cp -R "$src/." "$dest/"

for p in "${patches[@]}"; do
	echo "kore-source: applying $(basename "$p")"
	if ! patch -d "$dest" -p1 --forward --batch --no-backup-if-mismatch \
	    -s < "$p"; then
		echo "kore-source: $(basename "$p") failed to apply" >&2
		exit 1
	fi
done

echo "$want" > "$stamp"
