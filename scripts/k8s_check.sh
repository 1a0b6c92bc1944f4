#!/usr/bin/env bash
# Offline checks of deploy/k8s (CI runs this after the tests):
#   1. every manifest is listed in kustomization.yaml, and every listed file exists;
#   2. kubernetes-validate (the dev extra, in .venv) against the schemas it ships, strict (no
#      unknown fields), for the oldest and newest Kubernetes versions we support;
#   3. checkov's Kubernetes policies with no failed check: a skipped one is annotated on its
#      resource (checkov.io/skipN) with the reason. checkov pins many packages of its own, so it
#      lives in its own venv (build/checkov-venv, made on first use), not in the dev extra.
# No network beyond pip: checkov runs with --skip-download (no guideline or policy fetch).
set -euo pipefail
cd "$(dirname "$0")/.."

K8S_VERSIONS=${K8S_VERSIONS:-"1.33.0 1.37.0"}
CHECKOV_VENV=build/checkov-venv
CHECKOV_SPEC="checkov>=3.2,<4"
say() { echo "k8s_check: $*"; }

say "kustomization.yaml lists every manifest"
.venv/bin/python - <<'PY'
import pathlib, sys
folder = pathlib.Path("deploy/k8s")
listed = set()
for line in (folder / "kustomization.yaml").read_text().splitlines():
    if line.strip().startswith("- ") and line.strip().endswith(".yaml"):
        listed.add(line.strip()[2:])
present = {p.name for p in folder.glob("*.yaml")} - {"kustomization.yaml"}
if listed != present:
    sys.exit(f"k8s_check: not listed: {sorted(present - listed)}; missing: {sorted(listed - present)}")
PY

manifests=$(ls deploy/k8s/*.yaml | grep -v kustomization.yaml)
for version in $K8S_VERSIONS; do
  say "kubernetes-validate --strict against Kubernetes $version"
  # shellcheck disable=SC2086
  .venv/bin/python -m kubernetes_validate --quiet --strict -k "$version" $manifests
done

if [ ! -x "$CHECKOV_VENV/bin/checkov" ]; then
  say "installing checkov into $CHECKOV_VENV"
  python3 -m venv "$CHECKOV_VENV"
  "$CHECKOV_VENV/bin/python" -m pip install -q --upgrade pip
  "$CHECKOV_VENV/bin/python" -m pip install -q "$CHECKOV_SPEC"
fi
say "checkov (kubernetes framework)"
"$CHECKOV_VENV/bin/checkov" -d deploy/k8s --framework kubernetes --skip-download --compact \
  --quiet
say "passed"
