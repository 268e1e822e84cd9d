# Shared by the fake release tools. Paths are relative to the job's working directory (the
# pipeline file's directory); the pipeline sets REGISTRY and STATE in its `env`.
REGISTRY=${REGISTRY:-.registry}
STATE=${STATE:-.state/release}

# Exits 1 with a message when the run asked this step to fail (--input fail_at=STEP).
fail_if_asked() {
  if [ "${INPUT_FAIL_AT:-none}" = "$1" ]; then
    echo "error: $2 (injected by --input fail_at=$1)" >&2
    exit 1
  fi
}

# A content digest of stdin: sha256 where there is a tool for it, else POSIX cksum.
digest() {
  if command -v sha256sum >/dev/null 2>&1; then
    echo "sha256:$(sha256sum | cut -c1-64)"
  elif command -v shasum >/dev/null 2>&1; then
    echo "sha256:$(shasum -a 256 | cut -c1-64)"
  else
    echo "cksum:$(cksum | cut -d' ' -f1)"
  fi
}
