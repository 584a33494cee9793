#!/bin/bash
# Today's benchmark against the publisher of earlier commits: what each change bought.
#
#   bench/history.sh feaa42f b477268 754bbc5 8952bdb 48c3e53 31eafee
#
# A worktree at bench/work/history with its own virtualenv keeps today's bench/ and takes
# prepush/ from each commit in turn (prepush only, one command per corte, median of 3).
set -euo pipefail
repo=$(git rev-parse --show-toplevel)
head=$(git -C "$repo" rev-parse HEAD)
tree="$repo/bench/work/history"
[ -d "$tree" ] || git -C "$repo" worktree add --detach "$tree" "$head"
cd "$tree"
git checkout -q -f --detach "$head"
make -s venv
for commit in "$@"; do
    # Files added after that commit would otherwise stay behind.
    rm -rf prepush
    git checkout -q "$commit" -- prepush/
    # The fleet mounts each web root before its sshd starts: today's fixture.
    git checkout -q "$head" -- prepush/sim/__init__.py prepush/sim/sshd.py
    echo "== $commit $(git log -1 --format=%s "$commit")"
    .venv/bin/python bench/run.py --datasets campeche,large,site-medium --tools prepush \
        --repeat 3 --scale "" --no-shaped --no-limit |
        grep -E '^\| (completo|siguiente) |^Tamaños|por difusor'
    rm -rf prepush
    git checkout -q -f "$head" -- prepush/
done
