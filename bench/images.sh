#!/usr/bin/env bash
# Makes the benchmark's input images in DIR, once; later calls reuse them.
#
#   images.sh DIR
#
# DIR/fs.img      1 GiB ext4 made with `mkfs.ext4 -d` from about 360 MB of real
#                 files (this machine's /usr/lib, /usr/bin, /usr/share, plus
#                 seeded random data); the rest of the filesystem is free.
# DIR/random.img  1 GiB of seeded pseudo-random bytes: incompressible.
# DIR/small.img   1 MiB of seeded pseudo-random bytes: for fixed overheads.
#
# Each image has a stamp DIR/NAME.stamp holding the generator version and the
# image's SHA-256; derived artifacts (bundles, .swu, .bmap) are keyed by it.
# The images are deterministic for a given machine: the same files are picked
# in the same order, and the filesystem's UUID, hash seed and times are fixed.
# Another machine with other packages installed gets a different fs.img.
set -euo pipefail

# Bump when the recipe changes, so cached images are remade.
readonly GEN=4
readonly MiB=$((1 << 20))

dir=${1:?usage: images.sh DIR}
mkdir -p "$dir"

stamp_ok() { # NAME: is the cached image current?
	[[ -f $dir/$1 && -f $dir/$1.stamp ]] && [[ $(head -n1 "$dir/$1.stamp") == "gen $GEN" ]]
}

write_stamp() { # NAME
	local sum
	sum=$(sha256sum "$dir/$1" | cut -d' ' -f1)
	printf 'gen %s\nsha256 %s\nsize %s\n' "$GEN" "$sum" "$(stat -c %s "$dir/$1")" >"$dir/$1.stamp"
}

# prng SEED BYTES: a fast deterministic byte stream (AES-CTR over zeros).
prng() {
	(
		set +o pipefail
		openssl enc -aes-256-ctr -nosalt -pbkdf2 -iter 1 -pass "pass:lifeboat-bench-$1" -in /dev/zero 2>/dev/null |
			head -c "$2"
	)
}

# pick SRC BUDGET: print files under SRC, sorted, until BUDGET bytes are used.
# Skips files larger than 32 MiB so that no single file dominates, and
# hard-linked files, which the filesystem would store once.
pick() {
	(
		set +o pipefail
		find "$1" -xdev -type f -links 1 -size +0 -size -32M -printf '%s %p\n' 2>/dev/null |
			LC_ALL=C sort -k2 |
			awk -v budget="$2" '{ if (sum + $1 > budget) exit; sum += $1; print substr($0, index($0, " ") + 1) }'
	)
}

make_fs() {
	local stage=$dir/fs-root list=$dir/fs-files.txt
	rm -rf "$stage" "$list"
	mkdir -p "$stage/data"
	{
		pick /usr/lib/x86_64-linux-gnu $((150 * MiB)) # shared libraries
		pick /usr/lib/gcc $((40 * MiB))                # compiler binaries
		pick /usr/bin $((50 * MiB))                    # executables
		pick /usr/share/doc $((30 * MiB))              # text, some gzip
		pick /usr/share/man $((15 * MiB))              # gzip man pages
		pick /usr/share/perl $((15 * MiB))             # source text
		pick /usr/share/locale $((20 * MiB))           # small binary files
	} >"$list"
	tar -C / --files-from=<(sed 's|^/||' "$list") -cf - 2>/dev/null | tar -C "$stage" -xf -
	# Incompressible data as a device would hold it: a few blobs, not one.
	local i
	for i in 1 2 3 4 5; do
		prng "fs-$i" $((8 * MiB)) >"$stage/data/blob$i.bin"
	done
	find "$stage" -exec touch -h -d @1700000000 {} +
	rm -f "$dir/fs.img"
	E2FSPROGS_FAKE_TIME=1700000000 mkfs.ext4 -q -F -b 4096 -L bench \
		-U 6c1f0b2e-5a3d-4e7b-9c1a-1f2e3d4c5b6a \
		-E hash_seed=0b7a6c5d-4e3f-4a1b-8c2d-3e4f5a6b7c8d,lazy_itable_init=0,lazy_journal_init=0 \
		-d "$stage" "$dir/fs.img" 1G
	# Make holes of every all-zero block, as a build system's sparse image has:
	# bmaptool maps only what is allocated.
	fallocate -d "$dir/fs.img"
	rm -rf "$stage"
	write_stamp fs.img
}

if ! stamp_ok fs.img; then
	echo "bench: making fs.img (ext4, real files)" >&2
	make_fs
fi
if ! stamp_ok random.img; then
	echo "bench: making random.img" >&2
	prng random $((1024 * MiB)) >"$dir/random.img"
	write_stamp random.img
fi
if ! stamp_ok small.img; then
	prng small $MiB >"$dir/small.img"
	write_stamp small.img
fi
