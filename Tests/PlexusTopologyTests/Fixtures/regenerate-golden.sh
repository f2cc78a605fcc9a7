#!/bin/sh
# Rewrites bad/*.expected and warnings/*.expected from `plexus topology check`.
# Review every changed line with `git diff` before committing: the goldens are the spec.
set -eu
cd "$(dirname "$0")"
plexus=${PLEXUS:-../../../.build/debug/plexus}
for dir in bad warnings; do
    (cd "$dir" && for f in *.toml; do "../$plexus" topology check "$f" 2>"${f%.toml}.expected" >/dev/null || true; done)
done
