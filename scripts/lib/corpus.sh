# The benchmark corpus shared by scripts/bench-index-image.sh and scripts/bench-migrate.sh.

# 2,000 files (292 MB), 60 % thumbnails of 2-20 KB, 30 % of 20-200 KB, 10 % of
# 200 KB-2 MB; hot.txt lists the first 20, cold.txt all of them.
make_image_corpus() {
    python3 - "$1" <<'PY'
import os, random, sys
root = sys.argv[1]
random.seed(7)
paths = []
for i in range(2000):
    r = i % 10
    size = random.randint(2_000, 20_000) if r < 6 else random.randint(20_000, 200_000) if r < 9 else random.randint(200_000, 2_000_000)
    rel = f"var/site/storage/images/{i % 50}/{i}-1-eng-GB/image_{i}.jpg"
    os.makedirs(os.path.join(root, "www", os.path.dirname(rel)), exist_ok=True)
    with open(os.path.join(root, "www", rel), "wb") as f:
        f.write(os.urandom(size))
    paths.append("/" + rel)
with open(os.path.join(root, "cold.txt"), "w") as f:
    f.write("\n".join(paths) + "\n")
with open(os.path.join(root, "hot.txt"), "w") as f:
    f.write("\n".join(paths[:20]) + "\n")
PY
}
