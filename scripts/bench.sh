#!/usr/bin/env bash
# The data path's speed, as ratios measured in one run (DESIGN.md §5, issue 12).
#
# Usage: scripts/bench.sh            (root with /dev/fuse, as the end-to-end tests)
#   BENCH_BINS=DIR           use DIR/micloudfs and DIR/micloud-sim instead of building
#   BENCH_MOUNT_FLAGS="..."  extra flags for `micloudfs mount`
#   BENCH_GALLERY=DIR        where the gallery folder is made (default target/bench-gallery)
#   BENCH_FS=fresh           put the caches and copies on a fresh ext4 file system (below)
#
# Builds the release binaries, makes a gallery folder once (target/bench-gallery, ~490 MB of
# random bytes: album "Trip" = 61 files, 230 MB, photos of 1.2–6 MB and four videos of
# 9–18 MB, the shape of a day's camera roll; album "Video" = one 241 MiB video; album
# "Extra" = 3 photos for cold first bytes), and serves it with
# `micloud-sim --from-dir … --profile wan --range on` (40 ms per request, 8 MB/s per
# connection, 64 MB/s in all, HTTP Range honoured). Then, in this order:
#
#   mount 1 (empty cache):  cold `cp -r albums/Trip`, checked with SHA1SUMS;
#                           warm re-read of the same files through the same mount against
#                           the same bytes read from the local copy: from the disk (every
#                           page of both dropped first with fadvise, after a sync), and
#                           from the page cache (only the mount's own pages dropped),
#                           best of three each;
#                           first 64 KiB of a cold photo and of the cold large video;
#   mount 2 (empty cache):  a 1 MiB read in the middle of the large video: bytes the
#                           emulator was asked to send (its `bytes_served`, counted when a
#                           response starts, so an upper bound) from the read until 3 s
#                           after it returned; then cold `rsync -a albums/Trip/`;
#   no mount:               the same album by a sequential and by an 8-way downloader
#                           (Python, written below against the protocol: login chain,
#                           album list, storage → JSONP → POST, SHA-1 checked, written to
#                           disk; keep-alive connections, files first come first served).
#
# BENCH_FS=fresh puts the caches and the copies on a fresh ext4 file system (a 4 GiB sparse
# image on a loop device with direct I/O): ext4's inode allocator skips every inode freed in
# the last 60 to 300 s, at a block look-up each, and on a disk where tests just deleted
# thousands of files each file or folder the daemon creates cost up to a millisecond of its
# CPU (13% of it during a copy, measured with perf). A fresh file system shows the daemon's
# own cost, but the loop device reads ahead less than a real disk (2.5 MiB here, against
# 8 MiB), which lowers the warm re-read ratio, so it is not the default.
#
# Printed: each figure with its ratio. Link capacity = 64 MB/s (10^6 bytes). First-byte
# bound = 3 round trips + size ÷ 8 MB/s (what a whole-file-first design pays). CPU = user +
# system seconds of the daemon during the two cold copies ÷ GB copied. Peak RSS = the
# daemons' VmHWM. The machine is shared: compare ratios of one run, not runs.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

for tool in python3 curl jq rsync fusermount3; do
  command -v "$tool" >/dev/null || { echo "bench.sh: needs $tool" >&2; exit 1; }
done
[ -e /dev/fuse ] || { echo "bench.sh: needs /dev/fuse" >&2; exit 1; }

if [ -n "${BENCH_BINS:-}" ]; then
  # Binaries built elsewhere (e.g. from another commit, to compare).
  BIN=$BENCH_BINS/micloudfs SIMBIN=$BENCH_BINS/micloud-sim FLOOR=$BENCH_BINS/receive_floor
  if [ ! -x "$FLOOR" ]; then
    cargo build --release --quiet --example receive_floor
    FLOOR=$PWD/target/release/examples/receive_floor
  fi
else
  echo "building (release)…" >&2
  cargo build --release --quiet --bins --example receive_floor
  BIN=$PWD/target/release/micloudfs SIMBIN=$PWD/target/release/micloud-sim
  FLOOR=$PWD/target/release/examples/receive_floor
fi
GALLERY=${BENCH_GALLERY:-$PWD/target/bench-gallery}
LINK=64000000 PER_CONN=8000000 RTT=0.040
MOUNT_FLAGS=(${BENCH_MOUNT_FLAGS:-})

work=$(mktemp -d /tmp/micloudfs-bench.XXXXXX)
sim_pid=""
mnt=$work/mnt
data=$work # where the caches and the copies go
cleanup() {
  if mountpoint -q "$mnt" 2>/dev/null; then "$BIN" unmount "$mnt" || "$BIN" unmount --lazy "$mnt" || true; fi
  if [ -n "$sim_pid" ] && kill -0 "$sim_pid" 2>/dev/null; then kill "$sim_pid"; wait "$sim_pid" 2>/dev/null || true; fi
  if [ "$data" != "$work" ] && mountpoint -q "$data"; then umount "$data" || umount -l "$data" || true; fi
  if [ -n "${loopdev:-}" ]; then losetup -d "$loopdev" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
fs_kind="the file system of $work"
if [ "${BENCH_FS:-}" = fresh ]; then
  if command -v mkfs.ext4 >/dev/null && command -v losetup >/dev/null; then
    truncate -s 4G "$work/fs.img"
    mkfs.ext4 -q -F "$work/fs.img"
    loopdev=$(losetup --find --show --direct-io=on "$work/fs.img")
    mkdir "$work/fs"
    mount "$loopdev" "$work/fs"
    data=$work/fs fs_kind="a fresh ext4 ($loopdev, direct I/O to $work/fs.img)"
  else
    echo "bench.sh: no mkfs.ext4 or losetup: measuring on $work's file system instead" >&2
    fs_kind="the file system of $work (no mkfs.ext4 or losetup)"
  fi
fi

# ---- the helper: gallery maker, timed reads, downloaders ----------------------------------
cat >"$work/bench.py" <<'PY'
import hashlib, http.client, json, os, queue, sys, threading, time
from urllib.parse import urlparse, urlencode, quote

MB = 1_000_000

def make_gallery(root):
    stamp = os.path.join(root, ".complete-v1")
    if os.path.exists(stamp):
        return
    def put(path, size, seed):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            left = size
            while left:
                n = min(left, 4 << 20)
                f.write(os.urandom(n))
                left -= n
    # Trip: 57 photos spread over 1.2–6 MB, 4 videos, 230 MB in all.
    sizes = [int(1.2 * MB + (i * 7919 % 57) * (4.8 * MB / 56)) for i in range(57)]
    videos = [18 * MB, 14 * MB, 11 * MB, 9 * MB]
    scale = (230 * MB - sum(videos)) / sum(sizes)
    sizes = [int(s * scale) for s in sizes]
    for i, s in enumerate(sizes):
        put(f"{root}/Trip/IMG_20240610_{100000 + i * 137:06d}.jpg", s, i)
    for i, s in enumerate(videos):
        put(f"{root}/Trip/VID_20240610_{120000 + i * 911:06d}.mp4", s, 100 + i)
    put(f"{root}/Video/VID_20240611_203000.mp4", 241 << 20, 200)
    for i in range(3):
        put(f"{root}/Extra/IMG_20240612_{90000 + i:06d}.jpg", 4 * MB + i * 12345, 300 + i)
    open(stamp, "w").close()

def timed_read(path, offset, length):
    """Seconds to read `length` bytes at `offset` (one open, reads until done)."""
    t0 = time.monotonic()
    fd = os.open(path, os.O_RDONLY)
    try:
        got = 0
        while got < length:
            b = os.pread(fd, min(length - got, 1 << 20), offset + got)
            if not b:
                break
            got += len(b)
    finally:
        os.close(fd)
    return time.monotonic() - t0, got

def read_all(paths):
    buf = bytearray(1 << 20)
    t0 = time.monotonic()
    total = 0
    for p in paths:
        with open(p, "rb", buffering=0) as f:
            while True:
                n = f.readinto(buf)
                if not n:
                    break
                total += n
    return time.monotonic() - t0, total

def drop_pages(paths):
    for p in paths:
        fd = os.open(p, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)

# -- a downloader written against the protocol (spec §2.2, §3.3, §3.6, §4) --

class Conn:
    def __init__(self, base):
        u = urlparse(base)
        self.host, self.port = u.hostname, u.port
        self.c = None
    def req(self, method, url, headers=None, body=None):
        u = urlparse(url)
        path = u.path + ("?" + u.query if u.query else "")
        for attempt in range(3):
            if self.c is None:
                self.c = http.client.HTTPConnection(u.hostname, u.port, timeout=120)
            try:
                self.c.request(method, path, body=body, headers=headers or {})
                return self.c.getresponse()
            except (http.client.HTTPException, OSError):
                self.c.close()
                self.c = None
                if attempt == 2:
                    raise

def login(base):
    c = Conn(base)
    r = c.req("GET", base + "/api/user/login?ts=1&followUp=%2F&_locale=zh_CN")
    login_url = json.loads(r.read())["data"]["loginUrl"]
    c2 = Conn(login_url)
    r = c2.req("GET", login_url, {"Cookie": "userId=1234567890; deviceId=wb_bench; passToken=V1:sim-pass-token"})
    r.read()
    sts = r.getheader("Location")
    if sts.startswith("/"):
        u = urlparse(login_url)
        sts = f"{u.scheme}://{u.netloc}{sts}"
    c3 = Conn(sts)
    r = c3.req("GET", sts)
    r.read()
    token = None
    for k, v in r.getheaders():
        if k.lower() == "set-cookie" and v.startswith("serviceToken="):
            token = v.split(";", 1)[0].split("=", 1)[1]
    return f"userId=1234567890; serviceToken={token}"

def absolute(base, url):
    if url.startswith("http"):
        return url
    return base + ("" if url.startswith("/") else "/") + url

def list_album(base, cookie, name):
    c = Conn(base)
    r = c.req("GET", base + "/gallery/user/album/list?ts=1&pageNum=0&pageSize=100&isShared=false&numOfThumbnails=1", {"Cookie": cookie})
    albums = json.loads(r.read())["data"]["albums"]
    album = next(a for a in albums if a.get("name") == name)
    items, page = [], 0
    while True:
        r = c.req("GET", base + f"/gallery/user/galleries?ts=1&albumId={album['albumId']}&pageNum={page}&pageSize=100", {"Cookie": cookie})
        data = json.loads(r.read())["data"]
        items += data["galleries"]
        if data.get("isLastPage", len(data["galleries"]) < 100) or not data["galleries"]:
            return items
        page += 1

def resolve(base, cookie, item, conn):
    """storage → JSONP → the POST that answers the bytes: (url, form body)."""
    r = conn.req("GET", base + f"/gallery/storage?ts=1&id={item['id']}", {"Cookie": cookie})
    url_a = absolute(base, json.loads(r.read())["data"]["url"])
    r = conn.req("GET", url_a)
    body = r.read().decode()
    payload = json.loads(body[body.index("(") + 1: body.rindex(")")])
    return absolute(base, payload["url"]), "meta=" + quote(payload["meta"], safe="")

def download(base, cookie, item, conn, dest):
    url, form = resolve(base, cookie, item, conn)
    r = conn.req("POST", url, {"Content-Type": "application/x-www-form-urlencoded"}, form)
    h = hashlib.sha1()
    n = 0
    with open(os.path.join(dest, item["fileName"]), "wb") as f:
        while True:
            b = r.read(1 << 20)
            if not b:
                break
            h.update(b)
            f.write(b)
            n += len(b)
    if h.hexdigest() != item["sha1"] or n != int(item["size"]):
        raise SystemExit(f"downloader: {item['fileName']} does not match its listing")
    return n

def downloader(base, album, workers, dest):
    cookie = login(base)
    items = list_album(base, cookie, album)
    os.makedirs(dest, exist_ok=True)
    q = queue.Queue()
    for it in items:
        q.put(it)
    total = [0]
    lock = threading.Lock()
    errors = []
    def work():
        conn = Conn(base)
        while True:
            try:
                it = q.get_nowait()
            except queue.Empty:
                return
            try:
                n = download(base, cookie, it, conn, dest)
            except BaseException as e:
                errors.append(e)
                return
            with lock:
                total[0] += n
    t0 = time.monotonic()
    threads = [threading.Thread(target=work) for _ in range(workers)]
    for t in threads: t.start()
    for t in threads: t.join()
    if errors:
        raise SystemExit(f"downloader failed: {errors[0]}")
    return time.monotonic() - t0, total[0]

def resolve_all(base, album, out):
    """The requests of receive_floor (examples/receive_floor.rs), one per line."""
    cookie = login(base)
    conn = Conn(base)
    with open(out, "w") as f:
        for item in list_album(base, cookie, album):
            url, form = resolve(base, cookie, item, conn)
            u = urlparse(url)
            f.write(f"{u.netloc}\t{u.path}?{u.query}\t{form}\t{item['size']}\t{item['sha1']}\n")

cmd = sys.argv[1]
if cmd == "gallery":
    make_gallery(sys.argv[2])
elif cmd == "read":
    s, n = timed_read(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    print(f"{s:.4f} {n}")
elif cmd == "readall":
    s, n = read_all(sys.argv[2:])
    print(f"{s:.4f} {n}")
elif cmd == "drop":
    drop_pages(sys.argv[2:])
elif cmd == "resolve":
    resolve_all(sys.argv[2], sys.argv[3], sys.argv[4])
elif cmd == "download":
    s, n = downloader(sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5])
    print(f"{s:.4f} {n}")
PY
py() { python3 "$work/bench.py" "$@"; }

if [ ! -e "$GALLERY/.complete-v1" ]; then
  echo "making the gallery folder $GALLERY (once)…" >&2
  py gallery "$GALLERY"
fi

# ---- the emulator -------------------------------------------------------------------------
start_sim "$work/sim.out" "$work/sim.log" "$SIMBIN" --from-dir "$GALLERY" --profile wan \
  --range on --no-cache
served() { curl -sf "$base/_sim/stats" | jq .bytes_served; }

sim_login "$BIN" "$work/config"

now() { date +%s.%N; }
calc() { python3 -c "print(${1})"; }
daemon_pid() {
  local p
  for p in /proc/[0-9]*; do
    if [ "$({ tr '\0' ' ' <"$p/cmdline"; } 2>/dev/null)" = "$BIN mount $mnt --config-dir $work/config --cache-dir $1 ${MOUNT_FLAGS[*]:+${MOUNT_FLAGS[*]} }" ]; then
      echo "${p#/proc/}"; return
    fi
  done
  echo "bench.sh: cannot find the daemon" >&2; exit 1
}
cpu_secs() { # user+system seconds of a pid
  awk -v hz="$(getconf CLK_TCK)" '{ print ($14 + $15) / hz }' "/proc/$1/stat"
}
hwm_mib() { awk '/^VmHWM:/ { printf "%.0f", $2 / 1024 }' "/proc/$1/status"; }
mount_fresh() { # mount_fresh CACHE_DIR: mounts on $mnt, prints the daemon pid
  mkdir -p "$mnt"
  "$BIN" mount "$mnt" --config-dir "$work/config" --cache-dir "$1" "${MOUNT_FLAGS[@]}" >/dev/null
  daemon_pid "$1"
}
check_copy() { # check_copy DIR_CONTAINING_Trip
  (cd "$1" && grep '  Trip/' "$mnt/albums/SHA1SUMS" | sha1sum -c --quiet) ||
    { echo "bench.sh: the copy in $1 is wrong" >&2; exit 1; }
}
timed_copy() { # timed_copy DAEMON_PID DEST COMMAND...: runs a cold copy into DEST (which
  # then holds Trip), checks it, and sets copy_secs and copy_cpu (the daemon's CPU seconds)
  local pid=$1 dest=$2 c0 t0 t1 c1
  shift 2
  c0=$(cpu_secs "$pid"); t0=$(now)
  "$@"
  t1=$(now); c1=$(cpu_secs "$pid")
  check_copy "$dest"
  copy_secs=$(calc "$t1 - $t0"); copy_cpu=$(calc "$c1 - $c0")
}

trip_bytes=$(du -sb --apparent-size "$GALLERY/Trip" | cut -f1)
video=$(ls "$GALLERY/Video")
video_size=$(stat -c %s "$GALLERY/Video/$video")
photo=$(ls "$GALLERY/Extra" | head -1)
photo_size=$(stat -c %s "$GALLERY/Extra/$photo")

# ---- mount 1 ------------------------------------------------------------------------------
mkdir -p "$data/cp" "$data/rsync"
pid1=$(mount_fresh "$data/cache1")
echo "cold cp -r…" >&2
timed_copy "$pid1" "$data/cp" cp -r "$mnt/albums/Trip" "$data/cp/"
cp_secs=$copy_secs cp_cpu=$copy_cpu

echo "warm re-read…" >&2
mapfile -t local_files < <(find "$data/cp/Trip" -type f | sort)
mapfile -t mount_files < <(find "$mnt/albums/Trip" -type f | sort)
mapfile -t object_files < <(find "$data/cache1/objects" -type f)
sync
# From the disk: the pages of the local copy, of the cache objects and of the mount's
# files dropped before each read. Best of five each, alternating (the machine is shared,
# and its disk's speed varies by ±10% from one pass to the next).
local_secs=999 warm_secs=999
for _ in 1 2 3 4 5; do
  py drop "${local_files[@]}" "${object_files[@]}" "${mount_files[@]}"
  read -r s local_n < <(py readall "${local_files[@]}")
  local_secs=$(calc "min($local_secs, $s)")
  py drop "${local_files[@]}" "${object_files[@]}" "${mount_files[@]}"
  read -r s warm_n < <(py readall "${mount_files[@]}")
  warm_secs=$(calc "min($warm_secs, $s)")
done
# From the page cache (both sides' bytes in memory, the mount's own pages dropped): what
# is left is the cost of going through the mount (an open is a round trip to the daemon).
py readall "${local_files[@]}" "${object_files[@]}" >/dev/null
hot_local=999 hot_warm=999
for _ in 1 2 3; do
  read -r s _ < <(py readall "${local_files[@]}")
  hot_local=$(calc "min($hot_local, $s)")
  py drop "${mount_files[@]}"
  read -r s _ < <(py readall "${mount_files[@]}")
  hot_warm=$(calc "min($hot_warm, $s)")
done
[ "$warm_n" = "$local_n" ] || { echo "bench.sh: warm read got $warm_n bytes, local $local_n" >&2; exit 1; }

echo "first bytes…" >&2
read -r photo_ttfb _ < <(py read "$mnt/albums/Extra/$photo" 0 65536)
read -r video_ttfb _ < <(py read "$mnt/albums/Video/$video" 0 65536)
hwm1=$(hwm_mib "$pid1")
passthrough=$(grep -c "FUSE passthrough: verified" "$data/cache1/micloudfs.log" || true)
"$BIN" unmount "$mnt"

# ---- mount 2 ------------------------------------------------------------------------------
pid2=$(mount_fresh "$data/cache2")
echo "1 MiB in the middle of the video…" >&2
b0=$(served)
read -r mid_secs _ < <(py read "$mnt/albums/Video/$video" $((video_size / 2)) 1048576)
sleep 3
b1=$(served)
mid_mib=$(calc "($b1 - $b0) / 1048576")

echo "cold rsync -a…" >&2
timed_copy "$pid2" "$data/rsync" rsync -a "$mnt/albums/Trip/" "$data/rsync/Trip/"
rsync_secs=$copy_secs rsync_cpu=$copy_cpu
hwm2=$(hwm_mib "$pid2")
"$BIN" unmount "$mnt"

# ---- downloaders --------------------------------------------------------------------------
echo "downloaders…" >&2
read -r seq_secs _ < <(py download "$base" Trip 1 "$data/dl1")
read -r par_secs _ < <(py download "$base" Trip 8 "$data/dl8")

# ---- the CPU floor: the same bytes by a bare receiver (examples/receive_floor.rs) -----------
echo "receive floor…" >&2
# The requests are resolved once (6 s of round trips) for the three runs, which take about
# 12 s: within the 60 s the daemon itself reuses a resolved URL for (fetcher::URL_REUSE).
py resolve "$base" Trip "$work/requests"
floor_cpu() { # floor_cpu [--sha1] [--store DIR]: user + system seconds of a bare receiver of Trip
  "$FLOOR" "$work/requests" "$FLOOR_CONNS" "$@" | awk '{ print $6 + $8 }'
}
FLOOR_CONNS=16 # the daemon's default --max-connections
floor_recv=$(floor_cpu)
floor_sha1=$(floor_cpu --sha1)
mkdir -p "$data/floor"
floor_store=$(floor_cpu --sha1 --store "$data/floor")

# ---- report -------------------------------------------------------------------------------
python3 - "$trip_bytes" "$cp_secs" "$rsync_secs" "$seq_secs" "$par_secs" "$local_secs" \
  "$warm_secs" "$local_n" "$photo_ttfb" "$photo_size" "$video_ttfb" "$video_size" \
  "$mid_secs" "$mid_mib" "$cp_cpu" "$rsync_cpu" "$hwm1" "$hwm2" "$passthrough" \
  "$LINK" "$PER_CONN" "$RTT" "$hot_local" "$hot_warm" "$fs_kind" "$floor_recv" "$floor_sha1" \
  "$floor_store" "$FLOOR_CONNS" <<'PY'
import sys
(trip, cp, rs, seq, par, local, warm, warm_n, pttfb, psize, vttfb, vsize, mid_s, mid_mib,
 cp_cpu, rs_cpu, hwm1, hwm2, passthrough, link, per_conn, rtt, hot_local, hot_warm,
 fs_kind, floor_recv, floor_sha1, floor_store, floor_conns) = sys.argv[1:]
f = float
trip, link, per_conn, rtt = f(trip), f(link), f(per_conn), f(rtt)
rate = lambda secs: trip / f(secs)
print(f"album: 61 files, {trip/1e6:.0f} MB; link: {link/1e6:.0f} MB/s in all, {per_conn/1e6:.0f} MB/s per connection, {rtt*1000:.0f} ms per request")
print(f"caches and copies on {fs_kind}")
print(f"{'figure':<44} {'value':>12} {'ratio':>8}  target")
row = lambda name, value, ratio, target: print(f"{name:<44} {value:>12} {ratio:>8}  {target}")
row("cold cp -r / link capacity", f"{rate(cp)/1e6:.1f} MB/s", f"{rate(cp)/link:.3f}", ">= 0.8")
row("cold rsync -a / link capacity", f"{rate(rs)/1e6:.1f} MB/s", f"{rate(rs)/link:.3f}", ">= 0.8")
row("sequential downloader / link capacity", f"{rate(seq)/1e6:.1f} MB/s", f"{rate(seq)/link:.3f}", "")
row("8-way downloader / link capacity", f"{rate(par)/1e6:.1f} MB/s", f"{rate(par)/link:.3f}", "")
row("cold cp -r / sequential downloader", "", f"{f(seq)/f(cp):.2f}", "")
row("cold cp -r / 8-way downloader", "", f"{f(par)/f(cp):.2f}", "")
warm_rate, local_rate = f(warm_n) / f(warm), f(warm_n) / f(local)
pt = "passthrough" if int(passthrough) else "no passthrough"
row(f"warm re-read / local disk ({pt})", f"{warm_rate/1e6:.0f} MB/s", f"{warm_rate/local_rate:.3f}", ">= 0.9 (0.7 without passthrough)")
row(f"  the same, both in the page cache", f"{f(warm_n)/f(hot_warm)/1e6:.0f} MB/s", f"{f(hot_local)/f(hot_warm):.3f}", "(an open costs a daemon round trip)")
bound = lambda size: 3 * rtt + f(size) / per_conn
row("first 64 KiB of a cold photo (s) / bound", f"{f(pttfb):.3f} s", f"{f(pttfb)/bound(psize):.3f}", f"bound {bound(psize):.2f} s")
row("first 64 KiB of a cold video (s) / bound", f"{f(vttfb):.3f} s", f"{f(vttfb)/bound(vsize):.3f}", f"<= 1.5 s (bound {bound(vsize):.1f} s)")
row("1 MiB mid-video read: MiB asked of server", f"{f(mid_mib):.1f} MiB", "", f"<= 16 MiB (read took {f(mid_s):.2f} s)")
row("daemon peak RSS", f"{max(int(hwm1), int(hwm2))} MiB", "", "")
gb = 2 * trip / 1e9
row("daemon CPU per GB copied (cold cp + rsync)", f"{(f(cp_cpu)+f(rs_cpu))/gb:.2f} s/GB", "", "<= 2")
row("  cold cp -r alone / cold rsync -a alone", f"{f(cp_cpu)/(gb/2):.2f} / {f(rs_cpu)/(gb/2):.2f}", "", "")
daemon = (f(cp_cpu) + f(rs_cpu)) / gb
recv, sha1, store = (f(x) / (gb / 2) for x in (floor_recv, floor_sha1, floor_store))
row(f"  floor: bare receiver, {floor_conns} connections", f"{recv:.2f} s/GB", "", "(no HTTP library, no disk)")
row(f"  floor: bare receiver + SHA-1", f"{sha1:.2f} s/GB", "", "(what any verifying client pays here)")
row(f"  floor: bare receiver + SHA-1 + disk", f"{store:.2f} s/GB", "", "(buffered writes, writeback not counted)")
row(f"  daemon / bare receiver + SHA-1", "", f"{daemon/sha1:.2f}", "")
row(f"  daemon / bare receiver + SHA-1 + disk", "", f"{daemon/store:.2f}", "")
PY
