#!/usr/bin/env bash
# Side-by-side benchmark: `lifeboat install` against dd, bmaptool and swupdate,
# writing the same images to the same target, one tool at a time, each from a
# cold page cache. Run it with `make bench` (which builds out/lifeboat and
# out/lifeboat-bundle first); it needs root for the loop device and for
# dropping caches. docs/BENCHMARKS.md explains what is measured and why.
#
# Environment:
#   OUT            where the binaries are          (default: ./out)
#   BENCH_CACHE    cached images and artifacts     (default: ./.cache/bench)
#   BENCH_RESULTS  where the report goes           (default: $OUT/bench)
#   BENCH_REPEAT   runs of each 1 GiB install; the median is reported (default: 5)
#   BENCH_RUNS     runs of each 1 MiB install; the median is reported (default: 7)
#   BENCH_ONLY     space-separated subset of: fs random small (default: all)
# shellcheck disable=SC2317 # tool_* and make_* are called by name
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out=${OUT:-$root/out}
cache=${BENCH_CACHE:-$root/.cache/bench}
results=${BENCH_RESULTS:-$out/bench}
runs=${BENCH_RUNS:-7}
repeat=${BENCH_REPEAT:-5}
only=${BENCH_ONLY:-fs random small}
lifeboat=$out/lifeboat
lbbundle=$out/lifeboat-bundle
readonly MiB=$((1 << 20))
# The target is the largest image plus room, as a device's disk would be.
readonly target_size=$((1024 * MiB + 64 * MiB))
# Where the .swu files expect the target: a fixed name, so that a signed .swu
# stays valid whichever loop device this run gets.
readonly swu_dev=/run/lifeboat-bench/disk
# Bump when the .swu recipe changes, so cached ones are remade.
readonly swu_gen=1

die() {
	echo "bench: $*" >&2
	exit 1
}
log() { echo "bench: $*" >&2; }

[[ $EUID -eq 0 ]] || die "needs root (loop devices, /proc/sys/vm/drop_caches)"
for t in losetup blkdiscard bmaptool swupdate openssl cpio mkfs.ext4 cmp fallocate; do
	command -v "$t" >/dev/null || die "$t is missing (make deps installs it)"
done
[[ -x /usr/bin/time ]] || die "/usr/bin/time is missing (apt-get install time)"
[[ -x $lbbundle ]] || die "$lbbundle is missing (make build)"

# One run at a time: runs share the cache, the work folder and $swu_dev.
mkdir -p "$cache"
exec 9>"$cache/.lock"
flock -n 9 || die "another bench run holds $cache/.lock"

start=$EPOCHREALTIME
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
rm -rf "$cache/work"
mkdir -p "$cache"/{images,keys/trust,art,work} "$results"

# ---------------------------------------------------------------- the target

loop=
cleanup() {
	if [[ -n $loop ]]; then
		losetup -d "$loop" 2>/dev/null || true
	fi
	rm -f "$swu_dev" "$cache/work/target.img"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

rm -f "$cache/work/target.img"
fallocate -l "$target_size" "$cache/work/target.img"
# Direct I/O: the backing file's page cache would otherwise hold a second copy
# of everything written, which a real disk does not have.
loop=$(losetup --find --show --direct-io=on "$cache/work/target.img")
mkdir -p "$(dirname "$swu_dev")"
ln -sfn "$loop" "$swu_dev"
log "target $loop ($((target_size / MiB)) MiB, backing file $cache/work/target.img)"

reset_target() { # zero the whole target; keeps the backing file allocated
	blkdiscard -f -z "$loop" 2>/dev/null || die "blkdiscard -z $loop failed"
	# A reset that did not happen would make every later check vacuous.
	local off
	for off in 0 $((512 * MiB)) $((target_size - MiB)); do
		cmp -s -n "$MiB" -i "0:$off" /dev/zero "$loop" || die "target not zeroed at $off"
	done
}

drop_caches() {
	sync
	echo 3 >/proc/sys/vm/drop_caches
}

# ----------------------------------------------------------- inputs, cached

"$root/bench/images.sh" "$cache/images"

stamp_sum() { sed -n 's/^sha256 //p' "$cache/images/$1.img.stamp"; }
img_size() { sed -n 's/^size //p' "$cache/images/$1.img.stamp"; }

# cached FILE KEY CMD...: run CMD (which makes FILE) unless FILE was made with
# the same KEY; remember how long making it took.
cached() {
	local file=$1 key=$2 t0
	shift 2
	if [[ -f $file && -f $file.key && $(head -n1 "$file.key") == "$key" ]]; then
		return
	fi
	log "making $(basename "$file")"
	rm -f "$file" "$file.key"
	t0=$EPOCHREALTIME
	"$@"
	printf '%s\n%s\n' "$key" "$(elapsed "$t0")" >"$file.key"
}
built_in() { sed -n 2p "$1.key" | awk '{ printf "%.1f", $1 }'; }

elapsed() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.3f", b - a }'; }

# Bundle signing key and the device's trust store (only the public key).
if [[ ! -f $cache/keys/bench.key ]]; then
	"$lbbundle" keygen -o "$cache/keys/bench" >/dev/null
fi
cp "$cache/keys/bench.pub" "$cache/keys/trust/bench.pub"

# swupdate's signing certificate: CMS needs extendedKeyUsage emailProtection.
if [[ ! -f $cache/keys/swu.crt ]]; then
	cat >"$cache/keys/swu.cnf" <<-'EOF'
		[req]
		distinguished_name = dn
		prompt = no
		x509_extensions = ext
		[dn]
		CN = lifeboat-bench
		[ext]
		basicConstraints = CA:FALSE
		keyUsage = digitalSignature
		extendedKeyUsage = emailProtection
		subjectKeyIdentifier = hash
	EOF
	openssl req -x509 -newkey rsa:2048 -nodes -days 36500 -config "$cache/keys/swu.cnf" \
		-keyout "$cache/keys/swu.key" -out "$cache/keys/swu.crt" 2>/dev/null
fi

make_bmap() { # NAME
	# Quiet: it warns that random.img has no holes, which is the point of it.
	bmaptool -q create -o "$cache/art/$1.bmap" "$cache/images/$1.img" 2>/dev/null
}

make_swu() { # NAME: signed .swu, raw handler, streamed straight to the device
	local d=$cache/art/swu-$1
	rm -rf "$d"
	mkdir -p "$d"
	ln -s "$cache/images/$1.img" "$d/$1.img"
	cat >"$d/sw-description" <<-EOF
		software = {
			version = "1.0.0";
			hardware-compatibility = [ "1.0" ];
			images: (
				{
					filename = "$1.img";
					device = "$swu_dev";
					type = "raw";
					sha256 = "$(stamp_sum "$1")";
					installed-directly = true;
				}
			);
		};
	EOF
	openssl cms -sign -in "$d/sw-description" -out "$d/sw-description.sig" \
		-signer "$cache/keys/swu.crt" -inkey "$cache/keys/swu.key" -outform DER -nosmimecap -binary
	# sw-description must come first; -L stores the image, not the link.
	(cd "$d" && printf '%s\n' sw-description sw-description.sig "$1.img" |
		cpio -o -L -H crc --quiet >"$cache/art/$1.swu")
	rm -rf "$d"
}

make_lfb() { # NAME
	local spec=$cache/art/$1-spec.yaml
	cat >"$spec" <<-EOF
		product: bench
		version: "1.0.0"
		security_version: 1
		compatible: [bench]
		description: benchmark image $1
		steps:
		  - type: image
		    target: disk
		    file: $cache/images/$1.img
	EOF
	"$lbbundle" create -spec "$spec" -key "$cache/keys/bench.key" -o "$cache/art/$1.lfb" >/dev/null
}

bundler_sum=$(sha256sum "$lbbundle" | cut -d' ' -f1)
for name in $only; do
	cached "$cache/art/$name.bmap" "$(stamp_sum "$name")" make_bmap "$name"
	cached "$cache/art/$name.swu" "$(stamp_sum "$name") swu $swu_gen $swu_dev" make_swu "$name"
	cached "$cache/art/$name.lfb" "$(stamp_sum "$name") $bundler_sum" make_lfb "$name"
done

# ------------------------------------------------------------ the tools

have_install=false
if [[ -x $lifeboat ]] && "$lifeboat" install --help >/dev/null 2>&1; then
	have_install=true
else
	log "lifeboat install is not available yet: its rows are left out"
fi

# Each tool_* NAME sets cmd to the command line that writes image NAME to the
# target the way that tool's own user would.
tool_dd() {
	cmd=(dd if="$cache/images/$1.img" of="$loop" bs=4M oflag=direct conv=fsync status=none)
}
tool_bmaptool() {
	cmd=(bmaptool -q copy --bmap "$cache/art/$1.bmap" "$cache/images/$1.img" "$loop")
}
tool_swupdate() {
	cmd=(swupdate -l 3 -k "$cache/keys/swu.crt" -H bench:1.0 -M -m -i "$cache/art/$1.swu")
}
tool_lifeboat() { # NAME [FLAG...]
	cmd=("$lifeboat" install --keys "$cache/keys/trust" --board-name bench --target "disk=$loop"
		--security-version-file "$cache/work/security-version" --events "$events" "${@:2}"
		"$cache/art/$1.lfb")
}
tool_lifeboat_verify() {
	tool_lifeboat "$1" --verify
}
tool_lifeboat_noskip() {
	tool_lifeboat "$1" --no-skip
}

# measure KEY NAME TOOL: run TOOL on image NAME, then flush the target (a tool
# that leaves dirty pages has not finished writing), then compare the target
# with the image. Sets R_WALL[KEY] R_CPU[KEY] R_RSS[KEY] R_CHECK[KEY].
declare -A R_WALL R_CPU R_RSS R_CHECK R_NOTE
measure() {
	local key=$1 name=$2 tool=$3 base=$cache/work/${1//\//-} t0 rc=0 cmd
	local tlog=$base.time olog=$base.log events=$base.events
	rm -f "$events"
	"$tool" "$name"
	echo "+ ${cmd[*]}" >"$olog"
	t0=$EPOCHREALTIME
	/usr/bin/time -v -o "$tlog" "${cmd[@]}" >>"$olog" 2>&1 || rc=$?
	sync "$loop"
	R_WALL[$key]=$(elapsed "$t0")
	R_CPU[$key]=$(awk -F': ' '/User time|System time/ { s += $2 } END { printf "%.2f", s }' "$tlog")
	R_RSS[$key]=$(awk -F': ' '/Maximum resident set size/ { printf "%.1f", $2 / 1024 }' "$tlog")
	if [[ -s $events ]]; then
		# The "done" event's byte counts, without needing a JSON tool.
		R_NOTE[$key]=$(grep '"event":"done"' "$events" | awk '{
			n = split("written skipped zeroed", f, " ")
			for (i = 1; i <= n; i++) {
				v = 0
				if (match($0, "\"" f[i] "_bytes\":[0-9]+")) v = substr($0, RSTART + length(f[i]) + 9, RLENGTH - length(f[i]) - 9)
				printf "%s%s %d", (i > 1 ? ", " : ""), (f[i] == "written" ? "wrote" : f[i]), v / 1048576
			}
		}' || true)
	fi
	if ((rc != 0)); then
		R_CHECK[$key]="FAIL: exit $rc"
		log "$key failed (exit $rc); its output, from $olog:"
		tail -n 15 "$olog" >&2
		return
	fi
	# Read the target back from the device, not from the page cache.
	echo 3 >/proc/sys/vm/drop_caches
	if cmp -s -n "$(img_size "$name")" "$cache/images/$name.img" "$loop"; then
		R_CHECK[$key]=ok
	else
		R_CHECK[$key]="FAIL: wrong bytes"
		log "$key left wrong bytes on the target: $(cmp -n "$(img_size "$name")" "$cache/images/$name.img" "$loop" 2>&1 | head -n1)"
	fi
}

# cold KEY NAME TOOL [keep]: measure from a zeroed target and a cold cache;
# with "keep" the target keeps what the previous run wrote.
cold() {
	[[ ${4:-} == keep ]] || reset_target
	drop_caches
	log "running $1"
	measure "$@"
}

tools=(dd bmaptool swupdate)
$have_install && tools+=(lifeboat)
big=(fs random)
[[ " $only " == *" fs "* ]] || big=("${big[@]/fs/}")
[[ " $only " == *" random "* ]] || big=("${big[@]/random/}")
read -ra big <<<"${big[*]}"

# summarize KEY N [DECIMALS]: the median wall and CPU time of runs KEY#1 ...
# KEY#N, their spread, the largest RSS, and the first failure if any, under KEY.
declare -A R_MIN R_MAX
summarize() {
	local key=$1 n=$2 d=${3:-2} i walls=() cpus=() rss=0 check=ok
	for ((i = 1; i <= n; i++)); do
		walls+=("${R_WALL[$key#$i]}")
		cpus+=("${R_CPU[$key#$i]}")
		rss=$(awk -v a="$rss" -v b="${R_RSS[$key#$i]}" 'BEGIN { print (b > a ? b : a) }')
		[[ $check != ok || ${R_CHECK[$key#$i]} == ok ]] || check=${R_CHECK[$key#$i]}
	done
	R_WALL[$key]=$(median "$d" "${walls[@]}")
	R_CPU[$key]=$(median 2 "${cpus[@]}")
	R_MIN[$key]=$(printf '%s\n' "${walls[@]}" | sort -g | awk -v d="$d" 'NR == 1 { printf "%.*f", d, $1 }')
	R_MAX[$key]=$(printf '%s\n' "${walls[@]}" | sort -g | awk -v d="$d" 'END { printf "%.*f", d, $1 }')
	R_RSS[$key]=$rss R_CHECK[$key]=$check R_NOTE[$key]=${R_NOTE[$key#1]:-}
}
median() { # DECIMALS VALUE...
	printf '%s\n' "${@:2}" | sort -g |
		awk -v d="$1" '{ v[NR] = $1 } END { printf "%.*f", d, NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# The 1 GiB runs. Rounds go through every tool in turn, so that a burst of
# load from elsewhere on the machine spreads over tools instead of hitting all
# the runs of one.
for ((rep = 1; rep <= repeat; rep++)); do
	for name in "${big[@]}"; do
		for tool in "${tools[@]}"; do
			cold "$name/$tool#$rep" "$name" "tool_$tool"
		done
		if $have_install; then
			# Straight after the first install: everything already in place.
			cold "$name/lifeboat-repeat#$rep" "$name" tool_lifeboat keep
			cold "$name/lifeboat-verify#$rep" "$name" tool_lifeboat_verify
			# What the skip-unchanged read costs a first install.
			cold "$name/lifeboat-noskip#$rep" "$name" tool_lifeboat_noskip
		fi
	done
done
for name in "${big[@]}"; do
	for tool in "${tools[@]}" lifeboat-repeat lifeboat-verify lifeboat-noskip; do
		[[ -n ${R_WALL[$name/$tool#1]:-} ]] && summarize "$name/$tool" "$repeat"
	done
done

# Fixed overhead: the 1 MiB image with a warm cache (the tool's own start-up
# and checks, not the disk), zeroed target each time, after one warm-up run.
if [[ " $only " == *" small "* ]]; then
	for tool in "${tools[@]}"; do
		log "running small/$tool x $runs"
		reset_target
		measure "small/$tool#0" small "tool_$tool"
		for ((i = 1; i <= runs; i++)); do
			reset_target
			measure "small/$tool#$i" small "tool_$tool"
		done
		summarize "small/$tool" "$runs" 3
	done
fi

# ------------------------------------------------------------ the report

human() { awk -v b="$1" 'BEGIN { if (b < 1048576) printf "%.1f KiB", b / 1024; else printf "%.1f MiB", b / 1048576 }'; }
mib() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1048576 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
alloc() { echo $(($(stat -c %b "$1") * $(stat -c %B "$1"))); }

artifact() { # NAME TOOL: what the tool reads, in MiB
	case $2 in
	dd) mib "$(stat -c %s "$cache/images/$1.img")" ;;
	bmaptool) echo "$(mib "$(alloc "$cache/images/$1.img")") + bmap $(awk -v b="$(stat -c %s "$cache/art/$1.bmap")" 'BEGIN { printf "%.0f", b / 1024 }') KiB" ;;
	swupdate) mib "$(stat -c %s "$cache/art/$1.swu")" ;;
	lifeboat*) mib "$(stat -c %s "$cache/art/$1.lfb")" ;;
	esac
}

label() {
	case $1 in
	dd) echo 'dd bs=4M oflag=direct conv=fsync' ;;
	bmaptool) echo 'bmaptool copy (with bmap)' ;;
	swupdate) echo 'swupdate (raw, streamed)' ;;
	lifeboat) echo 'lifeboat install' ;;
	lifeboat-repeat) echo 'lifeboat install, again (unchanged)' ;;
	lifeboat-verify) echo 'lifeboat install --verify (read back)' ;;
	lifeboat-noskip) echo 'lifeboat install --no-skip' ;;
	esac
}

report() {
	local name tool k f
	echo "## Lifeboat benchmark, $(date -u +%Y-%m-%d)"
	echo
	echo "Machine: $(nproc) CPUs ($(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1)), $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo) RAM, kernel $(uname -r);"
	echo "load average $load_start at the start, $(cut -d' ' -f1-3 /proc/loadavg) at the end (other work on the machine shows as spread in min-max)."
	echo "Target: loop device (direct I/O) over a preallocated file on $(findmnt -no FSTYPE -T "$cache/work") ($(findmnt -no SOURCE -T "$cache/work")), zeroed before each run."
	echo "Tools: $(dd --version | head -n1), bmaptool $(bmaptool --version 2>&1 | awk '{ print $2 }'), swupdate $(dpkg-query -W -f='${Version}' swupdate 2>/dev/null), lifeboat $(git -C "$root" describe --always --dirty 2>/dev/null || echo unknown)."
	echo
	if ((${#big[@]} > 0)); then
		echo "### 1 GiB images, cold cache, median of $repeat runs"
		echo
		echo "| image | tool | wall s | min-max | CPU s | peak RSS MiB | input MiB | target = image | lifeboat's own count, MiB |"
		echo "|---|---|---:|---:|---:|---:|---|---|---|"
		for name in "${big[@]}"; do
			for tool in "${tools[@]}" lifeboat-repeat lifeboat-verify lifeboat-noskip; do
				k=$name/$tool
				[[ -n ${R_WALL[$k]:-} ]] || continue
				echo "| $name | $(label "$tool") | ${R_WALL[$k]} | ${R_MIN[$k]}-${R_MAX[$k]} | ${R_CPU[$k]} | ${R_RSS[$k]} | $(artifact "$name" "$tool") | ${R_CHECK[$k]} | ${R_NOTE[$k]:-} |"
			done
		done
		echo
		echo "fs: 1 GiB ext4 of real files, $(mib "$(alloc "$cache/images/fs.img")") MiB allocated in the sparse image, the rest free. random: 1 GiB incompressible."
		echo "Wall time runs from the tool's start until the target is flushed (\`sync\` on the device after the tool exits);"
		echo "CPU is user+sys of the tool and its children; peak RSS is the largest of the runs."
		echo
	fi
	if [[ " $only " == *" small "* ]]; then
		echo "### Fixed overhead: 1 MiB image, warm cache, median of $runs runs"
		echo
		echo "| tool | wall s | min-max | CPU s | peak RSS MiB | target = image |"
		echo "|---|---:|---:|---:|---:|---|"
		for tool in "${tools[@]}"; do
			k=small/$tool
			echo "| $(label "$tool") | ${R_WALL[$k]} | ${R_MIN[$k]}-${R_MAX[$k]} | ${R_CPU[$k]} | ${R_RSS[$k]} | ${R_CHECK[$k]} |"
		done
		echo
	fi
	echo "### Artifacts"
	echo
	echo "| image | file | size | made in s |"
	echo "|---|---|---:|---:|"
	for name in $only; do
		for f in "$cache/images/$name.img" "$cache/art/$name.bmap" "$cache/art/$name.swu" "$cache/art/$name.lfb"; do
			case $f in
			*.img) echo "| $name | $name.img (allocated blocks of the sparse file) | $(human "$(alloc "$f")") | |" ;;
			*) echo "| $name | $(basename "$f") | $(human "$(stat -c %s "$f")") | $(built_in "$f") |" ;;
			esac
		done
	done
	echo
	if $have_install; then
		aims
	fi
	echo "Total bench time: $(awk -v s="$(elapsed "$start")" 'BEGIN { printf "%.0f", s }') s."
}

# aims: the project's targets, each with the numbers behind it.
aims() {
	local k max=0 name
	echo "### Aims"
	echo
	echo "| aim | lifeboat s | other s | lifeboat / other | met |"
	echo "|---|---:|---:|---:|---|"
	# aim TEXT KEY OTHER_KEY OP LIMIT: is lifeboat's time / the other's OP LIMIT?
	aim() {
		[[ -n ${R_WALL[$2]:-} && -n ${R_WALL[$3]:-} ]] || return 0
		local r
		r=$(ratio "${R_WALL[$2]}" "${R_WALL[$3]}")
		if [[ ${R_CHECK[$2]} != ok || ${R_CHECK[$3]} != ok ]]; then
			echo "| $1 | ${R_WALL[$2]} | ${R_WALL[$3]} | $r | **no: a run failed** |"
			return 0
		fi
		echo "| $1 | ${R_WALL[$2]} | ${R_WALL[$3]} | $r | $(yes_no "$r" "$5" "$4") |"
	}
	aim "random: within 1.25x of dd" random/lifeboat random/dd '<=' 1.25
	aim "fs: faster than dd" fs/lifeboat fs/dd '<' 1
	aim "fs: faster than bmaptool" fs/lifeboat fs/bmaptool '<' 1
	for name in "${big[@]}" small; do
		aim "$name: at least 2x faster than swupdate" "$name/lifeboat" "$name/swupdate" '<=' 0.5
	done
	for name in "${big[@]}"; do
		aim "$name: repeat install at most half the first (other: the first)" "$name/lifeboat-repeat" "$name/lifeboat" '<=' 0.5
	done
	for k in "${!R_RSS[@]}"; do
		[[ $k == */lifeboat* ]] || continue
		max=$(awk -v a="$max" -v b="${R_RSS[$k]}" 'BEGIN { print (b > a ? b : a) }')
	done
	echo
	echo "Peak RSS of lifeboat, largest of all its runs: $max MiB (aim: under 64 MiB: $(yes_no "$max" 64 '<'))."
	echo
}
yes_no() { awk -v v="$1" -v lim="$2" -v op="$3" 'BEGIN { ok = op == "<" ? v < lim : op == "<=" ? v <= lim : v >= lim; print ok ? "yes" : "**no**" }'; }

report | tee "$results/results.md"
{
	printf 'key\twall_s\tcpu_s\tpeak_rss_mib\tcheck\n'
	for k in "${!R_WALL[@]}"; do
		printf '%s\t%s\t%s\t%s\t%s\n' "$k" "${R_WALL[$k]}" "${R_CPU[$k]}" "${R_RSS[$k]}" "${R_CHECK[$k]}"
	done | sort
} >"$results/results.tsv"
log "report: $results/results.md (raw: $results/results.tsv, logs: $cache/work/)"

failed=0
for k in "${!R_CHECK[@]}"; do
	if [[ $k != *#* && ${R_CHECK[$k]} != ok ]]; then
		log "$k: ${R_CHECK[$k]}"
		failed=1
	fi
done
((failed == 0)) || log "some runs failed or left wrong bytes on the target"
exit "$failed"
