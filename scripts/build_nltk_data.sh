#!/usr/bin/env bash
# Build an nltk_data folder with WordNet 3.0 and NLTK's English stopwords, without the NLTK downloader (which needs
# network access that is not there), for machines without ../shared/data/nltk_data. TextAttack needs both.
#
#   bash scripts/build_nltk_data.sh [DEST]        DEST defaults to ~/nltk_data, which NLTK searches by default;
#                                                 elsewhere, export NLTK_DATA=DEST.
#
# - WordNet 3.0 database files come from Debian's wordnet-base and wordnet-sense-index packages (apt-get download +
#   dpkg -x: nothing is installed system-wide).
# - NLTK's reader also needs 'lexnames', which no Debian package ships: it is derived from the lexnames(5WN) man page
#   in wordnet-base (the table of the 45 lexicographer files; the category is 1 noun, 2 verb, 3 adj, 4 adv).
# - The English stopword list (179 words) is NLTK's corpora/stopwords/english (nltk_data, Snowball list plus
#   contractions), written out below and checked against its SHA-256.
# - nltk >= 3.10 refuses data writable by group/other: the result is chmod -R go-w.
# Set FORCE=1 to replace an existing DEST/corpora/wordnet or DEST/corpora/stopwords.
set -euo pipefail

dest="${1:-$HOME/nltk_data}"
stopwords_sha256=019f104ba2ed07436d05f9cdd3383034ad66014edc27fc651f837e1a038b6451
work="$(mktemp -d)"
chmod 755 "$work"  # apt-get download runs as _apt, which must reach the folder
trap 'rm -rf "$work"' EXIT

for corpus in wordnet stopwords; do
  if [ -e "$dest/corpora/$corpus" ] && [ "${FORCE:-0}" != 1 ]; then
    echo "build_nltk_data: $dest/corpora/$corpus already exists; set FORCE=1 to replace it" >&2
    exit 1
  fi
done

echo "[nltk_data] downloading wordnet-base and wordnet-sense-index" >&2
download() { (cd "$work" && apt-get download wordnet-base wordnet-sense-index) >&2; }
if ! download; then
  echo "[nltk_data] apt-get download failed; refreshing the package lists (apt-get update) and retrying" >&2
  apt-get update -qq >&2
  download
fi
for deb in "$work"/*.deb; do dpkg -x "$deb" "$work/root"; done
src="$work/root/usr/share/wordnet"
man="$work/root/usr/share/man/man5/lexnames.5WN.gz"
[ -f "$src/data.noun" ] && [ -f "$src/index.sense" ] && [ -f "$man" ] || {
  echo "build_nltk_data: the packages lack usr/share/wordnet/{data.noun,index.sense} or lexnames.5WN.gz" >&2
  exit 1
}

stage="$work/nltk_data"
mkdir -p "$stage/corpora/wordnet" "$stage/corpora/stopwords"
cp "$src"/* "$stage/corpora/wordnet/"
cp "$work/root/usr/share/doc/wordnet-base/copyright" "$stage/corpora/wordnet/LICENSE.debian-copyright"

# lexnames: the man page's table rows "NN<TAB>name<TAB>description" between the header rule "_" and ".TE"
zcat "$man" | awk -F'\t' '
  $0 == "_" { in_table = 1; next }
  $0 == ".TE" { in_table = 0 }
  in_table && $1 ~ /^[0-9][0-9]$/ {
    name = $2; gsub(/[ ]+/, "", name); split(name, parts, ".")
    category = (parts[1] == "noun") ? 1 : (parts[1] == "verb") ? 2 : (parts[1] == "adj") ? 3 : (parts[1] == "adv") ? 4 : 0
    if (category == 0) { print "unknown lexicographer file " name > "/dev/stderr"; exit 1 }
    printf "%s\t%s\t%d\n", $1, name, category
  }' > "$stage/corpora/wordnet/lexnames"
lines=$(wc -l < "$stage/corpora/wordnet/lexnames")
[ "$lines" -eq 45 ] || { echo "build_nltk_data: expected 45 lexnames rows, got $lines" >&2; exit 1; }

tr ' ' '\n' > "$stage/corpora/stopwords/english" <<'WORDS'
i me my myself we our ours ourselves you you're you've you'll you'd your yours yourself yourselves he him his
himself she she's her hers herself it it's its itself they them their theirs themselves what which who whom
this that that'll these those am is are was were be been being have has had having do does did doing a an the
and but if or because as until while of at by for with about against between into through during before after
above below to from up down in out on off over under again further then once here there when where why how
all any both each few more most other some such no nor not only own same so than too very s t can will just
don don't should should've now d ll m o re ve y ain aren aren't couldn couldn't didn didn't doesn doesn't
hadn hadn't hasn hasn't haven haven't isn isn't ma mightn mightn't mustn mustn't needn needn't shan shan't
shouldn shouldn't wasn wasn't weren weren't won won't wouldn wouldn't
WORDS
# one word per line, no empty lines (the wrapped heredoc lines end in newlines already)
sed -i '/^$/d' "$stage/corpora/stopwords/english"
echo "$stopwords_sha256  $stage/corpora/stopwords/english" | sha256sum --check --quiet - || {
  echo "build_nltk_data: the English stopword list does not match NLTK's" >&2
  exit 1
}

chmod -R go-w "$stage"
mkdir -p "$dest/corpora"
for corpus in wordnet stopwords; do
  rm -rf "$dest/corpora/$corpus"
  mv "$stage/corpora/$corpus" "$dest/corpora/$corpus"
done
chmod go-w "$dest" "$dest/corpora"
echo "[nltk_data] WordNet 3.0 and English stopwords in $dest (export NLTK_DATA=$dest unless it is ~/nltk_data)" >&2

# check with nltk when a Python that has it is at hand (the project's venv, else python3)
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
for py in "$root/.venv/bin/python" python3; do
  if "$py" -c "import nltk" 2>/dev/null; then
    NLTK_DATA="$dest" "$py" -c "
from nltk.corpus import stopwords, wordnet as wn
n = sum(1 for _ in wn.all_synsets())
assert n == 117659, f'expected 117,659 WordNet 3.0 synsets, got {n}'
assert len(stopwords.words('english')) == 179
print(f'[nltk_data] checked with nltk: {n} synsets, 179 stopwords, dog.n.01 -> {wn.synset(\"dog.n.01\").lexname()}')
" >&2
    break
  fi
done
